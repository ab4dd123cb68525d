"""``skucast`` — the command line. Errors a user can fix print one clear line and exit 1;
``--debug`` shows the traceback instead."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from worker.settings import Settings, load_settings

app = typer.Typer(
    name="skucast",
    help="Streaming, festival-aware demand forecasting: Kafka orders in, forecasts and alerts out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
services_app = typer.Typer(help="Start, stop and inspect the local Kafka (KRaft) and Redis.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(config_app, name="config")

console = Console()
err_console = Console(stderr=True, soft_wrap=True)
_state: dict[str, Any] = {"debug": False}

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data" / "online_retail.parquet"


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def settings() -> Settings:
    """The effective settings; a bad value or config file is a one-line user error."""
    try:
        return load_settings(_state.get("config"))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = "SKUCAST_" + ".".join(str(p) for p in first["loc"]).upper()
        raise UserError(f"bad configuration value for {name}: {first['msg']} (got {first.get('input')!r})") from None
    except ValueError as exc:
        raise UserError(str(exc)) from None


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    config: Annotated[Path | None, typer.Option(
        "--config", help="Settings file (TOML, YAML or JSON; field names without SKUCAST_). Env vars win.")] = None,
) -> None:
    _state["debug"] = debug
    _state["config"] = config


def _status_table(rows: list[Any]) -> Table:
    table = Table("service", "address", "state", "pid", "detail")
    for r in rows:
        table.add_row(r.name, r.address, "[green]running[/]" if r.running else "[red]stopped[/]",
                      str(r.pid or "-"), r.detail)
    return table


@services_app.command("up")
def services_up() -> None:
    """Start Kafka and Redis (downloads pinned Kafka jars once) and wait until both answer.

    Example: skucast services up
    """
    from worker import services

    console.print(_status_table(services.up(settings())))


@services_app.command("down")
def services_down() -> None:
    """Stop Kafka and Redis by PID.  Example: skucast services down"""
    from worker import services

    console.print(_status_table(services.down(settings())))


@services_app.command("status")
def services_status() -> None:
    """Say what runs where.  Example: skucast services status"""
    from worker import services

    console.print(_status_table(services.status(settings())))


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings, secrets masked.  Example: SKUCAST_KAFKA_PORT=19092 skucast config show"""
    table = Table("setting", "value")
    for name, value in settings().model_dump().items():
        table.add_row(f"SKUCAST_{name.upper()}", str(value))
    console.print(table)


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="Orders parquet (Online Retail layout).")] = DEFAULT_DATA,
    out: Annotated[Path | None, typer.Option(help="Model registry directory [default: SKUCAST_MODEL_DIR].")] = None,
    top_n: Annotated[int, typer.Option(help="Train on the N best-selling SKUs.")] = 500,
    epochs: Annotated[int, typer.Option(help="Maximum epochs (early stopping may end sooner).")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed (training is deterministic).")] = 0,
    if_missing: Annotated[bool, typer.Option("--if-missing", help="Do nothing when a model exists.")] = False,
) -> None:
    """Train the LSTM on real orders and export TorchScript + metadata.

    Example: skucast train --top-n 500 --epochs 30
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from model.registry import latest_version
    from model.train import TrainConfig
    from model.train import train as run_training

    s = settings()
    out_dir = out or s.model_dir
    if if_missing and (out_dir / "LATEST").is_file():
        console.print(f"model {latest_version(out_dir)} already in {out_dir}; skipping training")
        return
    if not data.exists():
        raise UserError(f"no order data at {data}; pass --data PATH to a parquet file")
    cfg = TrainConfig(data_path=data, out_dir=out_dir, top_n=top_n, epochs=epochs, seed=seed)
    with Progress(TextColumn("[bold]training"), BarColumn(), TextColumn("{task.completed}/{task.total} epochs"),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("train", total=epochs, info="")

        def on_epoch(m: dict[str, Any]) -> None:
            bar.update(task, completed=m["epoch"],
                       info=f"train {m['train_loss']:.4f}  val {m['val_loss']:.4f}  val MAE {m['val_mae']:.3f}")

        result = run_training(cfg, progress=on_epoch)
    v, b = result.validation, result.baseline
    console.print(
        f"[green]model {result.version}[/] written to {out_dir} in {result.seconds:.0f}s "
        f"(best epoch {result.best_epoch}); validation MAE {v['mae']:.3f} RMSE {v['rmse']:.3f} "
        f"vs seasonal naive MAE {b['mae']:.3f} RMSE {b['rmse']:.3f}"
    )


@app.command()
def worker() -> None:
    """Run the streaming worker (Faust, uvloop): orders → Redis windows → forecasts and alerts.

    Example: SKUCAST_WEB_PORT=6066 skucast worker
    """
    import asyncio

    import uvloop

    from model.predictor import Forecaster
    from model.registry import ModelError
    from worker.app import build_app
    from worker.topics_admin import ensure_topics

    s = settings()
    try:
        forecaster = Forecaster.from_dir(s.model_dir, device=s.device)
    except ModelError as exc:
        raise UserError(str(exc)) from None
    _check_redis(s)
    created = ensure_topics(s)
    if created:
        console.print(f"created topics: {', '.join(sorted(created))}")
    console.print(f"model {forecaster.version} on {forecaster.device}; consuming {s.topic('orders')} "
                  f"from {s.kafka_bootstrap}; Redis {s.redis_address}; http://{s.web_host}:{s.web_port}/metrics")
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from faust.worker import Worker

    faust_app = build_app(s, forecaster)
    faust_worker = Worker(faust_app, loglevel="WARNING", quiet=True)
    # Faust's startup spinner sets the root logger to DEBUG so that every log call turns it, and
    # leaves it so: every debug line of aiokafka, Faust and mode then builds a record (~3 % of the
    # hot loop at 5k orders/s). Without the spinner the root logger stays at WARNING.
    faust_worker.spinner = None
    faust_worker.execute_from_commandline()


def _check_redis(s: Settings) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from worker.connections import redis_kwargs
    from worker.services.redis import redis_client_error_message

    try:
        redis.Redis(**redis_kwargs(s), socket_connect_timeout=3, retry=Retry(NoBackoff(), 0)).ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.AuthenticationError,
            redis.exceptions.ResponseError, OSError) as exc:
        raise UserError(redis_client_error_message(s, exc)) from None


@app.command()
def replay(
    speed: Annotated[float, typer.Option(help="Shop seconds per wall second (3600 = 1 h/s; 0 = max).")] = 3600,
    limit: Annotated[int | None, typer.Option(help="Stop after N order lines.")] = None,
    from_: Annotated[datetime | None, typer.Option("--from", help="First event time (UTC).")] = None,
    to: Annotated[datetime | None, typer.Option(help="Stop before this event time (UTC).")] = None,
    data: Annotated[Path, typer.Option(help="Orders parquet.")] = DEFAULT_DATA,
) -> None:
    """Produce the bundled real orders to `orders` in event-time order.

    Example: skucast replay --speed 3600 --from 2011-11-01 --limit 20000
    """
    from datetime import UTC

    from model.data import clean, load_raw, to_order_lines
    from worker.replay import ReplayWindow, encode_lines, select
    from worker.replay import replay as run_replay
    from worker.topics_admin import ensure_topics

    s = settings()
    ensure_topics(s)
    utc = [d.replace(tzinfo=UTC) if d and d.tzinfo is None else d for d in (from_, to)]
    lines = select(to_order_lines(clean(load_raw(data))), ReplayWindow(utc[0], utc[1], limit))
    total = len(lines)
    console.print(f"replaying {total} order lines to {s.topic('orders')} at {speed:g}x")
    from rich.progress import Progress

    with Progress(console=console) as bar:
        task = bar.add_task("replay", total=total)
        sent = run_replay(s, encode_lines(lines), speed, on_progress=lambda n: bar.update(task, completed=n))
    console.print(f"[green]{sent} orders delivered[/]")


@app.command()
def tail(
    topic: Annotated[str, typer.Argument(help="forecasts | alerts | dlq | late")],
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest message.")] = False,
    max_messages: Annotated[int | None, typer.Option("--max", help="Stop after N messages.")] = None,
    idle_timeout: Annotated[float | None, typer.Option(help="Stop after S seconds without messages.")] = None,
) -> None:
    """Print a live, readable view of an output topic.

    Example: skucast tail alerts --from-beginning
    """
    from worker.tail import TOPICS
    from worker.tail import tail as run_tail

    if topic not in TOPICS:
        raise UserError(f"unknown topic {topic!r}; choose one of: {', '.join(TOPICS)}")
    run_tail(settings(), topic, lambda line: console.print(line, highlight=False, soft_wrap=True),
             from_beginning=from_beginning, max_messages=max_messages, idle_timeout_s=idle_timeout)


@app.command()
def reset(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete this deployment's state: its topics, its consumer group and its Redis keys.

    Only the configured namespace is touched (SKUCAST_TOPIC_PREFIX, SKUCAST_APP_ID,
    SKUCAST_REDIS_PREFIX); stop its workers first. The next replay then starts from nothing.

    Example: SKUCAST_TOPIC_PREFIX=demo. SKUCAST_APP_ID=skucast-demo SKUCAST_REDIS_PREFIX=demo skucast reset --yes
    """
    import redis

    from worker.connections import redis_kwargs
    from worker.redis_keys import keys_under, unlink_all
    from worker.topics_admin import GroupInUse, delete_namespace, namespace_topics

    s = settings()
    _check_redis(s)
    topics = namespace_topics(s)
    with redis.Redis(**redis_kwargs(s), socket_connect_timeout=3) as client:
        keys = keys_under(client, s.redis_prefix)
        console.print(f"namespace: topics {', '.join(topics) or '(none)'}; consumer group {s.app_id!r}; "
                      f"{len(keys)} Redis keys under {s.redis_prefix}: at {s.redis_address}")
        if not yes and not typer.confirm("delete all of it?", default=False):
            raise typer.Exit(1)
        try:
            deleted_topics, group_existed = delete_namespace(s)
        except GroupInUse as exc:
            raise UserError(str(exc)) from None
        removed = unlink_all(client, keys)
    console.print(f"[green]deleted {len(deleted_topics)} topics, "
                  f"{'the' if group_existed else 'no'} consumer group and {removed} Redis keys[/]")


def _register_model_commands() -> None:
    from worker.cli_alerts import evaluate_alerts
    from worker.cli_model import evaluate, train_file

    app.command("evaluate")(evaluate)
    app.command("train-file")(train_file)
    app.command("evaluate-alerts")(evaluate_alerts)


_register_model_commands()


def main() -> None:
    from worker.services import ServiceError
    from worker.topics_admin import KafkaUnavailable

    try:
        app()
    except (UserError, ServiceError, KafkaUnavailable) as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[red]error:[/] {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # `python -m worker.cli ...` as well as the `skucast` script
    main()
