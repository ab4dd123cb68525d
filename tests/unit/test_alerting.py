"""Alert lifecycle rules (model.surge) and the tracker that applies them to a batch."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from model.detector import DetectorInputs, score
from model.surge import AlertState, Moment, alert_id, projected_shortfall, step
from model.thresholds import Thresholds, save_thresholds
from worker.alerting import AlertTracker, Context, MemoryAlertStates, thresholds_for
from worker.settings import Settings

NOW = datetime(2011, 12, 1, tzinfo=UTC)
DAY = 15309


def moment(day: int, hour_of_day: int, breach: bool, calm: bool = False, sev: str = "warning") -> Moment:
    return Moment("SKU1", "surge", day, day * 24 + hour_of_day, breach, calm, sev)


def test_lifecycle_opened_updated_resolved_with_a_stable_id() -> None:
    state, t = step(None, moment(DAY, 10, True), cooldown_hours=6)
    assert t == "opened" and state is not None and state.alert_id == alert_id("SKU1", "surge", DAY * 24 + 10)
    opened = state
    state, t = step(state, moment(DAY, 11, True), 6)
    assert t is None and state == opened  # deduplicated: same severity, same day
    state, t = step(state, moment(DAY, 12, True, sev="critical"), 6)
    assert t == "updated" and state is not None and state.severity == "critical"
    state, t = step(state, moment(DAY, 13, True, sev="info"), 6)
    assert t is None and state is not None and state.severity == "critical"  # never downgraded
    state, t = step(state, moment(DAY, 17, False, calm=True), 6)
    assert t is None  # the breach day itself never resolves
    state, t = step(state, moment(DAY + 1, 9, False, calm=False), 6)
    assert t is None  # a later day, but not calm yet
    state, t = step(state, moment(DAY + 1, 14, False, calm=True), 6)
    assert t == "resolved" and state is not None and state.alert_id == opened.alert_id
    assert state.resolved_hour == (DAY + 1) * 24 + 14 and not state.is_open


def test_cooldown_after_a_resolved_alert_then_a_new_id() -> None:
    resolved = AlertState("old", "info", DAY * 24 + 9, DAY, resolved_hour=(DAY + 1) * 24 + 12)
    state, t = step(resolved, moment(DAY + 1, 15, True), cooldown_hours=6)
    assert t is None and state == resolved
    state, t = step(resolved, moment(DAY + 1, 19, True), cooldown_hours=6)
    assert t == "opened" and state is not None and state.alert_id not in ("old", "")
    assert step(None, moment(DAY, 9, False), 6) == (None, None)


def test_projected_shortfall_only_when_stock_runs_out() -> None:
    assert projected_shortfall(500.0, 30.0, 100.0, 2.0) == 0.0
    assert projected_shortfall(50.0, 30.0, 100.0, 0.5) == 80.0  # a ratio under 1 is not a surge


def batch_scores(observed_orders: list[float], share: float = 0.6) -> tuple[object, Context]:
    n = len(observed_orders)
    fc = np.tile([50.0, 100.0, 180.0], (n, 1))
    orders = np.asarray(observed_orders, dtype=np.float64)[:, None]
    inp = DetectorInputs((0.1, 0.5, 0.9), fc, fc[:, None, :], orders * 10, orders, np.ones((n, 1), bool),
                         np.ones((n, 1), bool), np.full(n, 0.1), np.full(n, share))
    ctx = Context(skus=[f"S{i}" for i in range(n)], day=np.full(n, DAY), hour=np.full(n, DAY * 24 + 13),
                  event_ts=np.full(n, NOW.timestamp()), festival=lambda d: "christmas (lead-in)",
                  remaining_today=np.full(n, 40.0), next_days=np.full(n, 1300.0), eligible=np.ones(n, bool))
    return score(inp, Thresholds()), ctx


def test_tracker_emits_events_and_persists_only_on_commit() -> None:
    async def main() -> None:
        states = MemoryAlertStates()
        tracker = AlertTracker(states, Thresholds(), cooldown_hours=6)
        scores, ctx = batch_scores([60.0, 6.0])  # S0 surges (9x), S1 is normal
        known = await tracker.load(ctx.skus)
        events = tracker.decide(scores, ctx, known, "v1", NOW)  # type: ignore[arg-type]
        assert [(e.sku, e.state, e.kind) for e in events] == [("S0", "opened", "surge")]
        e = events[0]
        assert e.festival == "christmas (lead-in)" and e.model_version == "v1" and e.severity == "critical"
        assert e.observed == 600.0 and e.expected == 60.0 and (e.lower, e.upper) == (30.0, 108.0)
        assert e.projected_shortfall is None  # no stock known
        assert states.data == {}  # nothing stored before the events are delivered
        await tracker.save(tracker.take_pending())
        assert states.data["S0"].states["surge"].alert_id == e.alert_id

        # A restarted worker (new tracker, same store) does not re-open the alert ...
        again = AlertTracker(states, Thresholds(), cooldown_hours=6)
        assert again.decide(scores, ctx, await again.load(ctx.skus), "v1", NOW) == []  # type: ignore[arg-type]
        # ... and resolves it on a calm later day, with the same id and the stock's shortfall.
        states.data["S0"].stock = 100.0
        calm_scores, calm_ctx = batch_scores([6.0, 6.0])
        calm_ctx.day, calm_ctx.hour = calm_ctx.day + 1, calm_ctx.hour + 24
        resolved = again.decide(calm_scores, calm_ctx, await again.load(calm_ctx.skus), "v2", NOW)  # type: ignore[arg-type]
        assert [(r.sku, r.state, r.alert_id, r.model_version) for r in resolved] == [
            ("S0", "resolved", e.alert_id, "v2")]

    asyncio.run(main())


def test_next_batch_sees_states_still_being_delivered() -> None:
    """A batch is scored while the previous one is delivered: its unsaved states count, not Redis's."""

    async def main() -> None:
        states = MemoryAlertStates()
        tracker = AlertTracker(states, Thresholds(), cooldown_hours=6)
        scores, ctx = batch_scores([60.0, 6.0])
        opened = tracker.decide(scores, ctx, await tracker.load(ctx.skus), "v1", NOW)  # type: ignore[arg-type]
        first = tracker.take_pending()
        assert [e.state for e in opened] == ["opened"] and states.data == {}
        # Before the first batch's states are saved, the same surge is not opened a second time.
        assert tracker.decide(scores, ctx, await tracker.load(ctx.skus), "v1", NOW) == []  # type: ignore[arg-type]
        calm_scores, calm_ctx = batch_scores([6.0, 6.0])
        calm_ctx.day, calm_ctx.hour = calm_ctx.day + 1, calm_ctx.hour + 24
        resolved = tracker.decide(calm_scores, calm_ctx, await tracker.load(ctx.skus), "v1", NOW)  # type: ignore[arg-type]
        second = tracker.take_pending()
        assert [(e.state, e.alert_id) for e in resolved] == [("resolved", opened[0].alert_id)]
        # The first save must not hide the second batch's newer state; each save stores its own.
        await tracker.save(first)
        assert states.data["S0"].states["surge"].is_open
        assert not (await tracker.load(["S0"]))[0].states["surge"].is_open
        await tracker.save(second)
        assert not states.data["S0"].states["surge"].is_open
        assert tracker._unsaved == {}

    asyncio.run(main())


def test_cold_start_rows_never_alert() -> None:
    async def main() -> None:
        tracker = AlertTracker(MemoryAlertStates(), Thresholds(), cooldown_hours=6)
        scores, ctx = batch_scores([40.0])
        ctx.eligible = np.array([False])
        assert tracker.decide(scores, ctx, await tracker.load(ctx.skus), "v1", NOW) == []  # type: ignore[arg-type]

    asyncio.run(main())


def test_thresholds_from_settings_and_the_calibrated_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = Settings(alert_surge_z=3.3, alert_cooldown_hours=2, alert_resolve_z=1.5, model_dir=tmp_path)
    plain = thresholds_for(s)
    assert (plain.surge, plain.resolve, plain.window_days) == (3.3, 1.5, 2)
    assert (plain.recent_hours, plain.margin, plain.settle_days) == (6, 1.2, 14)
    save_thresholds(tmp_path, "v9", replace(Thresholds(), surge=4.75, drop=6.0, window_days=2,
                                            calibration={"sku_days": 123}))
    calibrated = thresholds_for(s, tmp_path, "v9")
    assert (calibrated.surge, calibrated.drop, calibrated.window_days) == (4.75, 6.0, 2)
    assert calibrated.resolve == 1.5 and calibrated.calibration == {"sku_days": 123}
    # A file calibrated before margin / settle_days existed keeps the scoring it was calibrated with.
    assert (calibrated.margin, calibrated.settle_days) == (1.0, 0)
    with caplog.at_level(logging.WARNING, logger="skucast.alerts"):
        assert thresholds_for(s, tmp_path, "unknown") == plain
    assert "not calibrated" in caplog.text and "skucast evaluate-alerts" in caplog.text
    # ... and so does one calibrated before the drop window: drops over its window_days.
    assert (plain.drop_window_days, plain.drop_days, plain.past_days) == (3, 3, 14)
    assert (calibrated.drop_window_days, calibrated.drop_days, calibrated.past_days) == (0, 2, 0)
    save_thresholds(tmp_path, "v10", replace(Thresholds(), window_days=2, drop_window_days=5, past_days=21))
    assert (thresholds_for(s, tmp_path, "v10").drop_days, thresholds_for(s, tmp_path, "v10").span_days) == (5, 5)
    assert thresholds_for(s, tmp_path, "v10").past_days == 21
