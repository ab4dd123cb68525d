"""``skucast evaluate-alerts``: calibrate the alert thresholds and measure the detector offline.

Registered by :mod:`worker.cli` as ``app.command("evaluate-alerts")(evaluate_alerts)``. The work
is :func:`model.alert_eval.evaluate`; this module prints it, stores the calibrated thresholds
beside the model (the worker loads them) and writes the ``## Alerts`` section of a Markdown file.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data" / "online_retail.parquet"
SECTION = "## Alerts"
console = Console()


def evaluate_alerts(
    data: Annotated[Path, typer.Option(help="Orders parquet (Online Retail layout).")] = DEFAULT_DATA,
    model_dir: Annotated[Path | None, typer.Option(help="Model registry [default: SKUCAST_MODEL_DIR].")] = None,
    top_n: Annotated[int, typer.Option(help="SKUs scored (best first): half calibrate, half test.")] = 500,
    events: Annotated[int, typer.Option(help="Synthetic surges and drops to inject.")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed of the (first) injection.")] = 0,
    draws: Annotated[int, typer.Option(min=1, max=20, help=(
        "Independent injections (seeds SEED..SEED+DRAWS-1) into the same SKUs, pooled in the report."))] = 3,
    start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="First day evaluated.")] = datetime(2011, 10, 1),
    end: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="Last day evaluated.")] = datetime(2011, 12, 9),
    forecast: Annotated[str, typer.Option(help=(
        "What the detector compares with: 'model' (the trained model, as the worker runs) or 'seasonal-mean' "
        "(the ablation: the mean of the same weekday over 4 weeks; thresholds are then not written)."))] = "model",
    false_alarm_rate: Annotated[float | None, typer.Option(
        help="Alerts allowed per normal SKU-day [default: SKUCAST_ALERT_FALSE_ALARM_RATE].")] = None,
    write_thresholds: Annotated[bool, typer.Option(
        help="Store the calibrated thresholds beside the model (<version>.alerts.json).")] = True,
    docs: Annotated[Path | None, typer.Option(help="Markdown file whose '## Alerts' section to (re)write.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full report as JSON.")] = None,
) -> None:
    """Replay Online Retail with injected surges and drops through the worker's detector.

    Thresholds are calibrated on half the SKUs (no injection) to the false-alarm rate, then
    surges and drops (2x-10x, hours to days) are injected into the other half; reports
    precision, recall, median detection delay (event-time hours) and false alarms per 1,000
    untouched SKU-days.

    Example: skucast evaluate-alerts --docs docs/accuracy.md
    """
    from model.alert_eval import EvalConfig, evaluate
    from model.thresholds import Thresholds, save_thresholds
    from worker.alerting import thresholds_for
    from worker.settings import Settings

    s = Settings()
    model = model_dir or s.model_dir
    if not (model / "LATEST").is_file():
        raise typer.BadParameter(f"no trained model in {model}; train one with `skucast train`",
                                 param_hint="--model-dir")
    if not data.exists():
        raise typer.BadParameter(f"no order data at {data}", param_hint="--data")
    if forecast not in ("model", "seasonal-mean"):
        raise typer.BadParameter(f"{forecast!r}: use 'model' or 'seasonal-mean'", param_hint="--forecast")
    if forecast != "model" and docs is not None:
        raise typer.BadParameter("the docs section reports the model; run the ablation with --json",
                                 param_hint="--docs")
    cfg = EvalConfig(
        data_path=data, model_dir=model, top_n=top_n, eval_from=start.date(), eval_to=end.date(), seed=seed,
        draws=draws,
        false_alarm_rate=false_alarm_rate or s.alert_false_alarm_rate, detector=thresholds_for(s),
        cooldown_hours=s.alert_cooldown_hours, tz=s.market_timezone, device="cpu", forecast=forecast,
    )
    cfg = _with_events(cfg, events)
    report = evaluate(cfg, log=lambda line: console.print(f"[dim]{line}[/]"))
    console.print(summary_table(report))
    if write_thresholds and forecast == "model":
        path = save_thresholds(model, report["model_version"], Thresholds.from_dict(report["thresholds"]))
        console.print(f"calibrated thresholds written to {path} (the worker loads them with the model)")
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2, default=str))
    if docs is not None:
        command = f"skucast evaluate-alerts --top-n {top_n} --events {events} --seed {seed} --draws {draws}"
        write_section(docs, render_markdown(report, command))
        console.print(f"wrote the '{SECTION}' section of {docs}")


def _with_events(cfg: Any, n: int) -> Any:
    from dataclasses import replace

    return replace(cfg, plan=replace(cfg.plan, n_events=n))


def summary_table(report: dict[str, Any]) -> Table:
    table = Table("measure", "value", "target", title=f"alerts of model {report['model_version']}")
    fa = report["false_alarms_per_1000_sku_days"]
    rows = [
        ("recall", report["recall"], ">= 0.9"),
        ("recall of detectable events", report["recall_detectable"], ""),
        ("ceiling: recall any detector could reach", report["ceiling_recall"], ""),
        (f"found within {report['quick_hours']} h (ceiling)",
         f"{report['found_quick']} ({report['ceiling_quick']})", ""),
        ("precision", report["precision"], ">= 0.9"),
        ("median detection delay (h)", report["median_delay_h"], "<= 2"),
        ("false alarms / 1,000 untouched SKU-days", fa, "<= 1"),
        ("events (detectable)", f"{report['events']} ({report['detectable_events']})", ""),
        ("draws pooled", report["draws"], ""),
    ]
    for name, value, target in rows:
        table.add_row(name, str(value), target)
    return table


def _group_rows(groups: dict[str, dict[str, float]]) -> list[str]:
    out = []
    for name, g in groups.items():
        delay = "–" if g["median_delay_h"] != g["median_delay_h"] else f"{g['median_delay_h']:g}"
        out.append(f"| {name} | {g['events']:g} | {g['recall']:.2f} | {g['ceiling']:.2f} | {g['detectable']:g} | "
                   f"{g['recall_detectable']:.2f} | {delay} |")
    return out


def render_markdown(report: dict[str, Any], command: str) -> str:
    th = report["thresholds"]
    cal = th.get("calibration", {})
    met = {
        "recall": report["recall"] >= 0.9,
        "precision": report["precision"] >= 0.9,
        "delay": report["median_delay_h"] <= 2,
        "false alarms": report["false_alarms_per_1000_sku_days"] <= 1,
    }
    lines = [
        SECTION,
        "",
        f"Measured {date.today().isoformat()} with model `{report['model_version']}`:",
        "",
        "```",
        command,
        "```",
        "",
        "Online Retail, hour by hour, through the worker's own detector (`model.detector.score`, lifecycle "
        "`model.surge.step`). Thresholds are calibrated on half the top SKUs (alternate ranks, no injection) "
        f"over the evaluated weeks ({cal.get('from')} .. {cal.get('to')}, {cal.get('sku_days')} SKU-days) to "
        f"{th['false_alarm_rate'] * 1000:g} alert per 1,000 SKU-days: surge z > {th['surge']} (over up to "
        f"{th['window_days']} days), drop z > {th['drop']} (over up to "
        f"{th.get('drop_window_days') or th['window_days']} days). The other half gets {report['events']} "
        f"injected events in {report['draws']} independent draws, each replayed on its own and pooled here "
        f"({', '.join(f'{v} {k}s' for k, v in report['events_by_kind'].items())}; sizes 2x-10x; surges of "
        "hours to days, drops (a SKU that stops selling) of days; many inside the Christmas ramp) — see "
        "`model.alert_inject` for how.",
        "",
        "| measure | value | target | met |",
        "|---|---|---|---|",
        f"| recall | {report['recall']:.2f} | >= 0.9 | {'yes' if met['recall'] else 'no'} |",
        f"| precision | {report['precision']:.2f} | >= 0.9 | {'yes' if met['precision'] else 'no'} |",
        f"| median detection delay (event time) | {report['median_delay_h']:g} h | <= 2 h | "
        f"{'yes' if met['delay'] else 'no'} |",
        f"| false alarms per 1,000 untouched SKU-days | {report['false_alarms_per_1000_sku_days']:.2f} "
        f"({report['false_alarms']} in {report['untouched_sku_days']}) | <= 1 | "
        f"{'yes' if met['false alarms'] else 'no'} |",
        f"| recall of *detectable* events ({report['detectable_events']} of {report['events']}) | "
        f"{report['recall_detectable']:.2f} | | |",
        f"| **ceiling**: recall any detector could reach | {report['ceiling_recall']:.2f} | | |",
        f"| events found within {report['quick_hours']} h (ceiling) | {report['found_quick']:.2f} "
        f"({report['ceiling_quick']:.2f}) | | |",
        "",
        "*Ceiling* (`model.alert_oracle`): the most often any detector within the false-alarm budget "
        "could find each event, averaged over the events, even one that knows each SKU's true normal "
        "rate hour by hour and the event's hours, on counts that are exactly Poisson. Raising at most "
        f"{th['false_alarm_rate'] * 1000:g} false alarm per 1,000 normal SKU-days, a detector alerts in "
        "an event's match window (its hours and the day after) on normal data with probability at most "
        "that rate times the days the window spans; no test of that size finds an event more often "
        "than the Neyman-Pearson test on its order-line count, whose power this is. "
        f"{_verdict(report)}",
        "",
        "Each draw on its own:",
        "",
        "| seed | events | recall | ceiling | precision | median delay (h) | false alarms / 1,000 |",
        "|---|---|---|---|---|---|---|",
        *[f"| {d['seed']} | {d['events']} | {d['recall']:.3f} | {d['ceiling_recall']:.3f} | {d['precision']:.3f} | "
          f"{d['median_delay_h']:g} | {d['false_alarms_per_1000_sku_days']:.2f} |" for d in report["by_draw"]],
        "",
        "*Detectable*: an oracle that knows the SKU's true normal rate would find the event's order "
        "count that unlikely (Poisson tail p < 1e-4 over exactly the event's hours). The best-selling "
        "SKUs of this shop sell a few order lines a day, so most 2x-3x events, and most drops, are "
        "inside normal day-to-day variation: no detector can tell them at 1 false alarm per 1,000 "
        "SKU-days.",
        "",
        "Where it falls short: drops need days without the expected orders before they are "
        "distinguishable, and mild (2x-3x) surges of SKUs selling a few lines a day stay within their "
        f"normal spread; surges shorter than a day are caught in a median {_short_delay(report)}. "
        "The score is computed on order lines, not units, so a single bulk order (one buyer) does not "
        "alert, and it is scaled by the shop-wide level of the day, so a day when everything sells more "
        "is not a surge of one SKU. The thresholds are written to `<model_dir>/<version>.alerts.json`, "
        "which the worker loads with the model (also on a hot reload); re-run the command after training "
        "a new model.",
        "",
        "| events | n | recall | ceiling | detectable | recall (detectable) | median delay (h) |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in ("by_kind", "by_size", "by_length", "by_season"):
        lines += _group_rows(report[key])
    return "\n".join(lines) + "\n"


def _short_delay(report: dict[str, Any]) -> str:
    delay = report["by_length"].get("hours (<24h)", {}).get("median_delay_h", float("nan"))
    return "– (none found)" if delay != delay else f"{delay:g} h"


def _verdict(report: dict[str, Any]) -> str:
    """What the ceiling says about the recall and delay targets, in one or two sentences."""
    quick, hours = report["ceiling_quick"], report["quick_hours"]
    parts = []
    if report["ceiling_recall"] < 0.9:
        parts.append(f"With these events, recall >= 0.9 is out of reach of any detector (ceiling "
                     f"{report['ceiling_recall']:.2f}).")
    if quick < 0.45:
        parts.append(f"A median delay of at most {hours} h at recall 0.9 needs at least 0.45 of all events "
                     f"found within {hours} h of their start; at most {quick:.2f} can be (a drop from "
                     "midnight shows nothing in the shop's closed night hours, and a surge of a SKU "
                     "selling a few order lines a day adds a line or two an hour).")
    return " ".join(parts) or "The targets are within the ceiling."


def write_section(path: Path, body: str) -> None:
    """Replace the ``## Alerts`` section of ``path``, or append it.

    The generated part ends at the section's first ``### `` heading (or the next ``## ``): the
    written-up subsections after it (ablations, what was tried) survive a re-run.
    """
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(rf"^{re.escape(SECTION)}\s*$.*?(?=^## |^### |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: body + "\n", text, count=1)
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + body
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
