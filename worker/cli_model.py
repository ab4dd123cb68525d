"""``skucast evaluate`` and ``skucast train-file``: typer commands as plain functions.

``worker/cli.py`` registers them (``app.command("evaluate")(evaluate)``,
``app.command("train-file")(train_file)``). Errors a user can fix print one line and exit 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, cast

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)
DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data" / "online_retail.parquet"
DEFAULT_OUT = Path("benchmarks") / "accuracy" / "results"
DATASETS = ("online-retail", "m5", "stallion", "file")
Freq = Literal["D", "W", "M"]


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/] {message}")
    return typer.Exit(code=1)


def _load(
    dataset: str, data: Path | None, id_col: str, time_col: str, target_col: str, freq: str,
    horizon: int | None, windows: int, top_n: int, market: str | None, covariates: list[str],
) -> Any:
    from model import datasets

    if dataset == "online-retail":
        path = data or DEFAULT_DATA
        if not path.exists():
            raise _fail(f"no order data at {path}; pass --data PATH")
        return datasets.online_retail(path, top_n=top_n, horizon=horizon or 14)
    if dataset == "m5":
        m5_dir = data or datasets.M5_DIR
        if not (m5_dir / "m5_L1_L3_daily_units_d1_d1969.csv").is_file():
            raise _fail(f"M5 files not found in {m5_dir}; pass --data DIR (the shared data/m5 folder)")
        return datasets.m5(m5_dir)
    if dataset == "stallion":
        path = data or datasets.STALLION_PATH
        if not path.is_file():
            raise _fail(f"no stallion.parquet at {path}; pass --data PATH")
        return datasets.stallion(path)
    if data is None or not data.is_file():
        raise _fail("--dataset file needs --data PATH to a long-format CSV or Parquet file")
    if freq not in ("D", "W", "M"):
        raise _fail(f"--freq must be D, W or M, not {freq!r}")
    try:
        return datasets.long_format(data, id_col, time_col, target_col, cast(Freq, freq), horizon or 14, windows,
                                    market=market, covariate_cols=tuple(covariates))
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _table(report: dict[str, Any]) -> Table:
    table = Table(title=f"{report['dataset']}: {report['n_series']} series, h={report['horizon']}, "
                        f"origins {report['origins'][0]}..{report['origins'][-1]}")
    for col in ("model", "MAE", "RMSE", "MASE", "pinball", "80% cover", "WRMSSE L1/L2/L3"):
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=col == "model")
    for name, m in report["models"].items():
        w = m.get("wrmsse")
        table.add_row(name, f"{m['mae']:.3f}", f"{m['rmse']:.3f}", f"{m['mase']:.3f}", f"{m['pinball']:.3f}",
                      f"{m['coverage80']:.1%}", " / ".join(f"{w[k]:.4f}" for k in ("L1", "L2", "L3")) if w else "-")
    return table


def evaluate(
    dataset: Annotated[str, typer.Option(help=f"One of {', '.join(DATASETS)}.")] = "online-retail",
    data: Annotated[Path | None, typer.Option(help="Data file or folder [default: the dataset's own].")] = None,
    fmt: Annotated[str, typer.Option("--format", help="Layout of --data for --dataset file: long.")] = "long",
    id_col: Annotated[str, typer.Option(help="Series id column (file).")] = "sku",
    time_col: Annotated[str, typer.Option(help="Timestamp column (file).")] = "date",
    target_col: Annotated[str, typer.Option(help="Target (units) column (file).")] = "units",
    covariate: Annotated[list[str] | None, typer.Option(help="Known-ahead covariate column; repeatable.")] = None,
    freq: Annotated[str, typer.Option(help="Period of --data: D (daily), W (weekly) or M (monthly).")] = "D",
    horizon: Annotated[int | None, typer.Option(help="Forecast horizon in periods [default: the dataset's].")] = None,
    windows: Annotated[int, typer.Option(help="Test windows (origins) for --dataset file.")] = 3,
    market: Annotated[str | None, typer.Option(help="Festival market for daily/weekly files: CN, US, UK.")] = None,
    top_n: Annotated[int, typer.Option(help="Online Retail: the N best-selling SKUs.")] = 500,
    epochs: Annotated[int, typer.Option(help="LSTM maximum epochs.")] = 30,
    seeds: Annotated[int, typer.Option(help="LSTM ensemble size (seeds 0..N-1).")] = 1,
    scale_weighted: Annotated[bool, typer.Option(help="Weight the loss by series volume.")] = False,
    lookback: Annotated[int | None, typer.Option(help="LSTM lookback in periods [default: the dataset's].")] = None,
    max_windows: Annotated[int, typer.Option(help="Training windows drawn per epoch.")] = 24_576,
    baselines: Annotated[bool, typer.Option(help="Also run seasonal naive, AutoETS, Croston.")] = True,
    out: Annotated[Path, typer.Option(help="Folder for <dataset>.json and <dataset>.png.")] = DEFAULT_OUT,
) -> None:
    """Rolling-origin backtest: LSTM vs seasonal naive, AutoETS, Croston on the same windows.

    Example: skucast evaluate --dataset stallion --seeds 3
    """
    from model.backtest import BacktestConfig, run_backtest

    if dataset not in DATASETS:
        raise _fail(f"--dataset must be one of {', '.join(DATASETS)}, not {dataset!r}")
    if fmt != "long":
        raise _fail("only --format long is supported (one row per series and period)")
    loaded = _load(dataset, data, id_col, time_col, target_col, freq, horizon, windows, top_n, market, covariate or [])
    cfg = BacktestConfig(epochs=epochs, seeds=tuple(range(seeds)), scale_weighted=scale_weighted, baselines=baselines,
                         lookback=lookback, max_windows=max_windows)
    with console.status("[bold]backtesting") as status:
        report = run_backtest(loaded, cfg, out, progress=lambda msg: status.update(f"[bold]{msg}"))
    console.print(_table(report))
    json_path, png_path = out / f"{loaded.name}.json", out / f"{loaded.name}.png"
    console.print(f"written {json_path} and {png_path} in {report['seconds']:.0f}s")



def train_file(
    data: Annotated[Path, typer.Option(help="Daily long-format CSV or Parquet: series id, timestamp, units.")],
    out: Annotated[Path, typer.Option(help="Model registry directory.")] = Path("models"),
    fmt: Annotated[str, typer.Option("--format", help="Layout of --data: long.")] = "long",
    id_col: Annotated[str, typer.Option(help="Series id column.")] = "sku",
    time_col: Annotated[str, typer.Option(help="Timestamp column.")] = "date",
    target_col: Annotated[str, typer.Option(help="Target (units) column.")] = "units",
    freq: Annotated[str, typer.Option(help="Period of --data; the worker forecasts days, so D.")] = "D",
    horizon: Annotated[int, typer.Option(help="Forecast horizon in days.")] = 14,
    market: Annotated[str | None, typer.Option(help="Festival market: CN, US, UK (none: calendar only).")] = None,
    campaigns: Annotated[Path | None, typer.Option(help="YAML/JSON file of your own campaigns.")] = None,
    top_n: Annotated[int, typer.Option(help="Train on the N biggest series.")] = 500,
    epochs: Annotated[int, typer.Option(help="Maximum epochs (early stopping may end sooner).")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed (training is deterministic).")] = 0,
) -> None:
    """Train the worker's LSTM on your own daily history and export it to the registry.

    Example: skucast train-file --data sales.csv --id-col item --time-col day --target-col qty --market US
    """
    from model.train import TrainConfig, train

    if fmt != "long":
        raise _fail("only --format long is supported (one row per series and day)")
    if freq != "D":
        raise _fail("the worker forecasts daily demand: --freq D (use `evaluate --dataset file` for W/M data)")
    if not data.is_file():
        raise _fail(f"no file at {data}")
    cfg = TrainConfig(data, out, top_n=top_n, horizon=horizon, epochs=epochs, seed=seed, market=market,
                      campaigns_path=campaigns, data_format="long", id_col=id_col, time_col=time_col,
                      target_col=target_col)
    try:
        with console.status("[bold]training") as status:
            result = train(cfg, progress=lambda m: status.update(
                f"[bold]epoch {m['epoch']}/{m['epochs']}: val {m['val_loss']:.4f} (best {m['best_epoch']})"))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    v = result.validation
    console.print(f"[green]model {result.version}[/] written to {out} (best epoch {result.best_epoch}); "
                  f"validation MAE {v['mae']:.3f}, raw 80% coverage {v['coverage']:.1%}")
