"""Run `skucast evaluate` without the CLI registration: ``python benchmarks/accuracy/evaluate.py --dataset m5``."""

import typer

from worker.cli_model import evaluate

if __name__ == "__main__":
    typer.run(evaluate)
