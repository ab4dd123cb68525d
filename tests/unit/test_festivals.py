"""Festival calendar: date rules for any year, windows, campaigns, known-ahead features per step."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from model.features import CALENDAR_FEATURES, FeatureSpec, day_index, make_inputs
from model.festivals import (
    BUILTIN,
    FEATURE_CLIP_DAYS,
    events_from_dates,
    feature_names,
    festival_features,
    load_campaigns,
    occurrences,
)


def starts(market: str, year: int) -> dict[str, list[date]]:
    out: dict[str, list[date]] = {}
    for o in occurrences(BUILTIN[market], year):
        out.setdefault(o.klass, []).append(o.start)
    return out


@pytest.mark.parametrize(
    ("year", "spring", "qixi"),
    [(2011, date(2011, 2, 3), date(2011, 8, 6)), (2024, date(2024, 2, 10), date(2024, 8, 10)),
     (2025, date(2025, 1, 29), date(2025, 8, 29))],
)
def test_cn_rules_follow_the_lunar_calendar(year: int, spring: date, qixi: date) -> None:
    s = starts("CN", year)
    assert s["spring_festival"] == [spring] and s["qixi"] == [qixi]
    assert s["singles_day"] == [date(year, 11, 11)] and s["double_12"] == [date(year, 12, 12)]
    assert s["jd_618"] == [date(year, 6, 18)]


@pytest.mark.parametrize(
    ("year", "super_bowl", "thanksgiving", "mothers"),
    [(2011, date(2011, 2, 6), date(2011, 11, 24), date(2011, 5, 8)),
     (2016, date(2016, 2, 7), date(2016, 11, 24), date(2016, 5, 8)),
     (2023, date(2023, 2, 12), date(2023, 11, 23), date(2023, 5, 14)),
     (2025, date(2025, 2, 9), date(2025, 11, 27), date(2025, 5, 11))],
)
def test_us_rules(year: int, super_bowl: date, thanksgiving: date, mothers: date) -> None:
    s = starts("US", year)
    assert s["super_bowl"] == [super_bowl] and s["thanksgiving"] == [thanksgiving] and s["mothers_day"] == [mothers]
    assert s["black_friday"] == [thanksgiving + timedelta(days=1)]
    assert s["cyber_monday"] == [thanksgiving + timedelta(days=4)]
    assert s["christmas"] == [date(year, 12, 25)] and s["valentines"] == [date(year, 2, 14)]
    prime = s["prime_day"][0]
    assert prime.month == 7 and prime.weekday() == 1 and 8 <= prime.day <= 14  # second Tuesday of July


def test_super_bowl_rule_matches_the_m5_calendar() -> None:
    from model.datasets import M5_DIR

    if not M5_DIR.is_dir():
        pytest.skip("needs ../shared/data/m5")
    import pandas as pd

    cal = pd.read_csv(M5_DIR / "calendar.csv")
    for name, klass in (("SuperBowl", "super_bowl"), ("Thanksgiving", "thanksgiving"), ("Mother's day", "mothers_day")):
        for d in cal.loc[cal.event_name_1 == name, "date"]:
            day = date.fromisoformat(d)
            assert starts("US", day.year)[klass] == [day], (name, d)


def test_uk_bank_holidays_come_from_the_holidays_package() -> None:
    s = starts("UK", 2011)
    assert date(2011, 4, 29) in s["bank_holiday"]  # the royal wedding, a one-off
    assert date(2011, 12, 27) in s["bank_holiday"]  # Christmas substitute day
    assert s["black_friday"] == [date(2011, 11, 25)] and s["boxing_day"] == [date(2011, 12, 26)]


def col(names: tuple[str, ...], name: str) -> int:
    return names.index(name)


def test_lead_peak_tail_windows_and_days_to_since() -> None:
    names = feature_names(BUILTIN["UK"])
    bf = date(2011, 11, 25)  # lead 7 days, peak 1, tail 3
    days = np.array([day_index(bf + timedelta(days=k)) for k in range(-9, 6)])
    f = festival_features(days, BUILTIN["UK"])
    lead, peak, tail = (f[:, col(names, f"black_friday_{k}")] for k in ("lead", "peak", "tail"))
    assert lead.tolist() == [0, 0] + [1] * 7 + [0] * 6
    assert peak.tolist() == [0] * 9 + [1] + [0] * 5
    assert tail.tolist() == [0] * 10 + [1, 1, 1, 0, 0]
    to = f[:, col(names, "black_friday_days_to")] * FEATURE_CLIP_DAYS
    since = f[:, col(names, "black_friday_days_since")] * FEATURE_CLIP_DAYS
    np.testing.assert_allclose(to[:10], np.arange(9, -1, -1), atol=1e-4)
    np.testing.assert_allclose(since[9:], np.arange(0, 6), atol=1e-4)
    assert to[10] == pytest.approx(FEATURE_CLIP_DAYS)  # next Black Friday is a year away: clipped


def test_days_to_wraps_across_new_year() -> None:
    names = feature_names(BUILTIN["CN"])
    f = festival_features(np.array([day_index(date(2024, 12, 31))]), BUILTIN["CN"])[0]
    # Spring Festival 2025 is 29 Jan: 29 days ahead of 31 Dec; in its 21-day lead-in? no (29 > 21).
    assert f[col(names, "spring_festival_days_to")] * FEATURE_CLIP_DAYS == pytest.approx(29, abs=1e-4)
    assert f[col(names, "spring_festival_lead")] == 0.0
    assert f[col(names, "double_12_days_since")] * FEATURE_CLIP_DAYS == pytest.approx(19, abs=1e-4)


def test_every_horizon_step_sees_its_own_festival_flags() -> None:
    """A forecast made on 20 Nov 2011: Black Friday (25 Nov) is step 5, only that step is in its peak."""
    spec = FeatureSpec("UK")
    names = spec.names()
    x = make_inputs(np.ones((2, 56), np.float32), np.array([day_index(date(2011, 11, 20))] * 2), 14, spec)
    future = x["future_calendar"][0]
    assert future.shape == (14, len(names))
    assert np.flatnonzero(future[:, col(names, "black_friday_peak")]).tolist() == [4]
    assert np.flatnonzero(future[:, col(names, "black_friday_tail")]).tolist() == [5, 6, 7]
    for k in range(14):
        day = day_index(date(2011, 11, 21) + timedelta(days=k))
        np.testing.assert_array_equal(future[k], spec.calendar(np.array([day]))[0])
    # A different origin shifts the flags with the days, not with the steps.
    later = make_inputs(np.ones((1, 56), np.float32), np.array([day_index(date(2011, 11, 22))]), 14, spec)
    assert np.flatnonzero(later["future_calendar"][0, :, col(names, "black_friday_peak")]).tolist() == [2]


def test_campaigns_from_yaml_and_json(tmp_path: Path) -> None:
    yml = tmp_path / "c.yaml"
    yml.write_text("campaigns:\n  - {name: spring sale, start: 2024-03-01, end: 2024-03-03, lead_in: 2, tail: 1}\n"
                   "  - {name: flash, start: 2024-05-05, class: flash_sale}\n")
    campaigns = load_campaigns(yml)
    js = tmp_path / "c.json"
    js.write_text(json.dumps([{"name": "spring sale", "start": "2024-03-01", "end": "2024-03-03", "lead_in": 2,
                               "tail": 1}, {"name": "flash", "start": "2024-05-05", "class": "flash_sale"}]))
    assert [(o.klass, o.start, o.end) for o in occurrences(load_campaigns(js), 2024)] == [
        (o.klass, o.start, o.end) for o in occurrences(campaigns, 2024)
    ]
    spec = FeatureSpec("UK", campaigns)
    names = spec.names()
    assert names[: len(CALENDAR_FEATURES)] == CALENDAR_FEATURES
    assert "campaign_peak" in names and "flash_sale_peak" in names
    days = np.array([day_index(date(2024, 2, 28)) + k for k in range(6)])
    f = spec.calendar(days)
    assert f[:, col(names, "campaign_lead")].tolist() == [1, 1, 0, 0, 0, 0]
    assert f[:, col(names, "campaign_peak")].tolist() == [0, 0, 1, 1, 1, 0]
    assert f[:, col(names, "campaign_tail")].tolist() == [0, 0, 0, 0, 0, 1]
    # Round trip through model metadata keeps the features identical.
    again = FeatureSpec.from_metadata(spec.to_metadata(range(2023, 2026)))
    assert again.names() == names
    np.testing.assert_array_equal(again.calendar(days), f)


def test_bad_campaigns_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {name: x, start: 2024-03-05, end: 2024-03-01}\n")
    with pytest.raises(ValueError, match="ends"):
        load_campaigns(bad)
    bad.write_text("- {name: x}\n")
    with pytest.raises(ValueError, match="start"):
        load_campaigns(bad)
    with pytest.raises(ValueError, match="unknown market"):
        FeatureSpec("XX")


def test_dated_events_and_season_channels() -> None:
    fest = events_from_dates("m5_sporting", [date(2016, 6, 2)], lead_in=1, peak_days=1, tail=1)
    f = festival_features(np.array([day_index(date(2016, 6, 1)) + k for k in range(3)]), (fest,))
    assert f[:, 2:].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    spec = FeatureSpec(None, (), season_lag=21)
    history = np.arange(1, 36, dtype=np.float32)[None, :]  # 35 days: 14 lookback + 21 lag
    x = make_inputs(history, np.array([15000]), 7, spec, lookback=14)
    scale = history[0, -14:].mean()
    # Past day i's last-season value is history[i] (35 - 14 - 21 = 0), future step k's is history[14 + k].
    np.testing.assert_allclose(x["past_calendar"][0, :, -2] * scale, history[0, :14], rtol=1e-5)
    np.testing.assert_allclose(x["future_calendar"][0, :, -2] * scale, history[0, 14:21], rtol=1e-5)
    assert x["future_calendar"][0, :, -1].tolist() == [1.0] * 7
    short = make_inputs(history[:, -20:], np.array([15000]), 7, spec, lookback=14)
    assert short["future_calendar"][0, :, -2:].sum() == 0.0  # too short for last year: flagged off
