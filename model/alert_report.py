"""The alert evaluation's report: injected events matched with the alerts a replay opened, and
every measure, pooled over the draws and per draw (:func:`summarise`).

An opened alert matches an event of the same SKU and kind when it opens between the event's start
and ``grace_hours`` after its end (:func:`match`); false alarms are counted on *untouched* SKU-days
only (:func:`untouched_mask`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from model.alert_inject import Event
from model.alert_oracle import Ceiling
from model.features import day_index
from model.thresholds import Thresholds

if TYPE_CHECKING:  # the evaluation imports this module
    from model.alert_eval import EvalConfig, ReplayResult


def match(events: list[Event], alerts: list[dict[str, Any]], grace_hours: int) -> tuple[list[float | None], int, int]:
    """Per event the detection delay in hours (``None``: missed); true and false opened alerts."""
    delays: list[float | None] = []
    matched_alerts: set[int] = set()
    opened = [(j, a) for j, a in enumerate(alerts) if a["state"] == "opened"]
    for e in events:
        hits = [(j, a) for j, a in opened if a["sku"] == e.sku and a["kind"] == e.kind
                and e.start_hour <= a["hour"] < e.end_hour + grace_hours]
        matched_alerts.update(j for j, _ in hits)
        delays.append(float(hits[0][1]["hour"] + 1 - e.start_hour) if hits else None)
    return delays, len(matched_alerts), len(opened) - len(matched_alerts)


def untouched_mask(events: list[Event], n: int, days: range, window_days: int) -> np.ndarray:
    """(n, len(days)) bool: SKU-days no event (or its aftermath) touches."""
    mask = np.ones((n, len(days)), dtype=bool)
    for e in events:
        lo = e.start_hour // 24 - days.start
        hi = (e.end_hour - 1) // 24 + window_days + 1 - days.start
        mask[e.sku, max(lo, 0) : max(hi + 1, 0)] = False
    return mask



def _shown(value: Path | date) -> str:
    """A path as the report shows it: relative to the working directory when under it."""
    if isinstance(value, Path) and value.is_absolute() and value.is_relative_to(Path.cwd()):
        return str(value.relative_to(Path.cwd()))
    return str(value)


@dataclass
class Draw:
    """One injection into the test SKUs and its replay."""

    seed: int
    events: list[Event]
    detectable: list[bool]
    best: Ceiling
    result: ReplayResult


@dataclass
class Scored:
    """A draw's events matched with its alerts."""

    delays: list[float | None]
    true_alerts: int
    false_alerts: int
    false_on_untouched: int
    untouched_sku_days: int


def score_draw(d: Draw, th: Thresholds, days: range, cfg: EvalConfig, n: int) -> Scored:
    delays, true_alerts, false_alerts = match(d.events, d.result.alerts, cfg.match_grace_hours)
    untouched = untouched_mask(d.events, n, days, th.span_days)
    opened = [a for a in d.result.alerts if a["state"] == "opened"]
    false_days = {(a["sku"], a["hour"] // 24 - days.start) for a in opened}
    false_on_untouched = sum(1 for s, day in false_days if 0 <= day < len(days) and untouched[s, day])
    return Scored(delays, true_alerts, false_alerts, false_on_untouched, int(untouched.sum()))


def _headline(events: list[Event], delays: list[float | None], scored: list[Scored], found_at: np.ndarray,
              quick_at: np.ndarray, quick_hours: int) -> dict[str, Any]:
    found = [d for d in delays if d is not None]
    true_alerts, false_alerts = sum(s.true_alerts for s in scored), sum(s.false_alerts for s in scored)
    false_on_untouched, untouched = sum(s.false_on_untouched for s in scored), sum(s.untouched_sku_days for s in scored)
    return {
        "events": len(events),
        "recall": round(len(found) / max(len(events), 1), 3),
        "ceiling_recall": round(float(found_at.mean()), 3) if events else float("nan"),
        "ceiling_quick": round(float(quick_at.mean()), 3) if events else float("nan"),
        "found_quick": round(sum(1 for d in found if d <= quick_hours) / max(len(events), 1), 3),
        "precision": round(true_alerts / max(true_alerts + false_alerts, 1), 3),
        "median_delay_h": float(np.median(found)) if found else float("nan"),
        "false_alarms": false_on_untouched,
        "untouched_sku_days": untouched,
        "false_alarms_per_1000_sku_days": round(1000 * false_on_untouched / max(untouched, 1), 3),
        "opened_alerts": true_alerts + false_alerts,
    }


def summarise(draws: list[Draw], th: Thresholds, days: range, cfg: EvalConfig, n: int) -> dict[str, Any]:
    """Every measure pooled over the draws (at least one: events, alerts and SKU-days added up), and
    each draw's headline."""
    scored = [score_draw(d, th, days, cfg, n) for d in draws]
    events = [e for d in draws for e in d.events]
    delays = [x for s in scored for x in s.delays]
    detectable = [x for d in draws for x in d.detectable]
    found_at = np.concatenate([d.best.found for d in draws])
    quick_at = np.concatenate([d.best.quick for d in draws])
    quick_hours = draws[0].best.quick_hours

    def group(key: Callable[[Event], str]) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for name in sorted({key(e) for e in events}):
            idx = [i for i, e in enumerate(events) if key(e) == name]
            hit = [d for d in (delays[i] for i in idx) if d is not None]
            can = [i for i in idx if detectable[i]]
            out[name] = {"events": len(idx), "recall": round(len(hit) / len(idx), 3),
                         "median_delay_h": float(np.median(hit)) if hit else float("nan"),
                         "ceiling": round(float(found_at[idx].mean()), 3),
                         "ceiling_quick": round(float(quick_at[idx].mean()), 3),
                         "detectable": len(can),
                         "recall_detectable": round(sum(delays[i] is not None for i in can) / max(len(can), 1), 3)}
        return out

    ramp = day_index(cfg.christmas_ramp_from)
    by_draw = []
    for d, s in zip(draws, scored, strict=True):
        by_draw.append({"seed": d.seed, **_headline(d.events, s.delays, [s], d.best.found, d.best.quick, quick_hours)})
    return {
        "config": {k: (_shown(v) if isinstance(v, Path | date) else v) for k, v in asdict(cfg).items()},
        **_headline(events, delays, scored, found_at, quick_at, quick_hours),
        "draws": len(draws),
        "quick_hours": quick_hours,
        "events_by_kind": dict(Counter(e.kind for e in events)),
        "detectable_events": sum(detectable),
        "recall_detectable": round(sum(d is not None for d, ok in zip(delays, detectable, strict=True) if ok)
                                   / max(sum(detectable), 1), 3),
        "by_draw": by_draw,
        "by_kind": group(lambda e: e.kind),
        "by_size": group(lambda e: "2-3x" if e.size < 3 else "3-5x" if e.size < 5 else "5-10x"),
        "by_length": group(lambda e: "hours (<24h)" if e.hours < 24 else f"{e.hours // 24} day(s)"),
        "by_season": group(lambda e: "Christmas ramp" if e.start_hour // 24 >= ramp else "before the ramp"),
    }
