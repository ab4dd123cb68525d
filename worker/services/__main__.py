"""``python -m worker.services up|down|status``: the services without the full CLI."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from worker import services
from worker.services.process import ServiceError, ServiceStatus
from worker.settings import Settings


def format_table(rows: Sequence[ServiceStatus]) -> str:
    header = ("service", "address", "state", "pid", "detail")
    cells = [header] + [
        (s.name, s.address, "running" if s.running else "stopped", str(s.pid or "-"), s.detail)
        for s in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in cells
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.services")
    parser.add_argument("action", choices=("up", "down", "status"))
    args = parser.parse_args(argv)
    settings = Settings()
    action = {"up": services.up, "down": services.down, "status": services.status}[args.action]
    try:
        rows = action(settings)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
