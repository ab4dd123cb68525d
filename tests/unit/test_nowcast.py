"""Intraday nowcast: hour profiles, their online learning, and the shop-wide level."""

from __future__ import annotations

import numpy as np
import pytest

from model.nowcast import (
    DEFAULT_PROFILE,
    HourProfile,
    MarketLevel,
    ProfileLearner,
    day_of_week,
    learn_profile,
    market_level,
    share_seen,
)
from tests.support import ROOT

THURSDAY = 15309  # 2011-12-01
SATURDAY = THURSDAY + 2
SUNDAY = THURSDAY + 3


def test_day_of_week_is_monday_zero() -> None:
    assert day_of_week(np.array([0, THURSDAY, SATURDAY, SUNDAY])).tolist() == [3, 3, 5, 6]


def test_default_profile_rows_are_distributions_and_saturday_borrows_all_days() -> None:
    share = DEFAULT_PROFILE.share
    assert share.shape == (7, 24)
    assert np.allclose(share.sum(axis=1), 1.0)
    assert share[:, :7].sum() == 0  # the shop never sells before 7:00
    assert share[6, :10].sum() < 0.001 and share[6, 12] > 0.2  # Sundays open late, peak at noon
    weekdays = share[[0, 1, 2, 3, 4, 6]].mean(axis=0)
    assert np.abs(share[5] - weekdays).max() < 0.05


def test_share_seen_is_monotone_from_zero_to_one() -> None:
    hours = np.arange(24)
    for day in (THURSDAY, SUNDAY):
        start = DEFAULT_PROFILE.share_seen(np.full(24, day), hours, np.zeros(24))
        end = DEFAULT_PROFILE.share_seen(np.full(24, day), hours, np.ones(24))
        assert start[0] == 0.0 and end[-1] == pytest.approx(1.0)
        assert np.all(np.diff(start) >= 0) and np.all(end >= start)
    # Half-way through an hour is half of that hour's share.
    half = DEFAULT_PROFILE.share_seen(np.array([THURSDAY]), np.array([12]), np.array([0.5]))[0]
    before = DEFAULT_PROFILE.share_seen(np.array([THURSDAY]), np.array([12]), np.array([0.0]))[0]
    assert half - before == pytest.approx(0.5 * DEFAULT_PROFILE.share[3, 12])


def test_default_profile_is_what_the_bundled_data_teaches() -> None:
    from model.data import clean, load_raw, to_order_lines
    from streams.buckets import local_day_hour

    lines = to_order_lines(clean(load_raw(ROOT / "data" / "online_retail.parquet")))
    day, hour = local_day_hour(lines["event_time"].map(lambda t: t.timestamp()).to_numpy(), "Europe/London")
    learned = learn_profile(day, hour % 24)
    assert np.abs(learned.share - DEFAULT_PROFILE.share).max() < 1e-3


def test_hour_profile_rejects_a_wrong_shape() -> None:
    with pytest.raises(ValueError):
        HourProfile(np.ones((24, 7)))


def test_learner_starts_at_the_prior_and_follows_a_category_with_enough_data() -> None:
    learner = ProfileLearner(prior_mass=100.0)
    rows = learner.rows_for(["toys", None])
    assert rows.tolist() == [0, 0] and np.allclose(learner.shares()[0], DEFAULT_PROFILE.share)
    # 900 night-owl order lines on Thursdays at 03:00 for "toys"; nothing for "garden".
    learner.observe(["toys"] * 900, np.full(900, THURSDAY), np.full(900, 3))
    learner.observe(["garden"], np.array([THURSDAY]), np.array([12]), weight=np.array([0.0]))
    shares = learner.shares()
    toys, garden = learner.rows_for(["toys", "garden"])
    assert shares[toys, 3, 3] == pytest.approx((100 * DEFAULT_PROFILE.share[3, 3] + 900) / 1000)
    assert np.allclose(shares[garden], DEFAULT_PROFILE.share)
    assert np.allclose(shares[toys, 0], DEFAULT_PROFILE.share[0])  # other weekdays untouched
    at3 = share_seen(shares, np.array([toys, garden]), np.full(2, THURSDAY), np.full(2, 4), np.zeros(2))
    assert at3[0] > 0.89 and at3[1] == 0.0


def test_learner_forgets_old_habits_beyond_max_mass() -> None:
    learner = ProfileLearner(prior_mass=10.0, max_mass=1000.0)
    learner.observe(["x"] * 1000, np.full(1000, THURSDAY), np.full(1000, 9))
    learner.observe(["x"] * 1000, np.full(1000, THURSDAY), np.full(1000, 15))
    share = learner.shares()[learner.rows_for(["x"])[0], 3]
    assert share[15] > share[9] > 0.2  # the newer hour weighs more, the older one still counts


def test_market_level_stays_near_one_with_little_data_and_is_clipped() -> None:
    assert market_level(np.array([3.0]), np.array([1.0]), prior=30)[0] == pytest.approx(33 / 31)
    assert market_level(np.array([3000.0]), np.array([100.0]))[0] == 4.0
    assert market_level(np.array([0.0]), np.array([1000.0]))[0] == 0.5


def test_market_level_leaves_the_sku_out_and_replaces_its_counts() -> None:
    level = MarketLevel(prior=10.0)
    days = np.array([[100]])
    level.update(["a", "b"], np.array([100, 100]), np.array([[10.0, 10.0], [10.0, 10.0]]), np.array([5.0, 10.0]))
    level.update(["a"], np.array([100]), np.array([[10.0, 10.0]]), np.array([40.0]))  # a surges: replaced, not added
    # For b, the rest of the shop (a) sells 40 vs 10 expected; for a, the rest (b) is as forecast.
    got = level.level(["a", "b"], np.array([[100], [100]]), np.ones((2, 1)), days)
    assert got[0, 0] == pytest.approx(1.0) and got[1, 0] == pytest.approx(50 / 20)
    # Half the day seen: the others' expectation halves.
    half = level.level(["b"], days, np.array([[0.5]]), days)
    assert half[0, 0] == pytest.approx(50 / 15)
    # A new forecast on the next day keeps yesterday's totals.
    level.update(["a"], np.array([101]), np.array([[10.0, 10.0]]), np.array([1.0]))
    assert level.level(["b"], np.array([[100]]), np.ones((1, 1)), np.array([[101]]))[0, 0] == pytest.approx(2.5)


def test_market_level_keeps_each_skus_last_days_and_the_totals_exact() -> None:
    level = MarketLevel(prior=0.0, keep_days=3)
    # Day by day, a and b sell 1, 2, 3, ... lines; each update replaces that day's count.
    for day in range(100, 106):
        for sku, k in (("a", 1.0), ("b", 10.0)):
            level.update([sku], np.array([day]), np.array([[20.0, 20.0]]), np.array([k * (day - 99)]))
            level.update([sku], np.array([day]), np.array([[20.0, 20.0]]), np.array([k * (day - 99) + 1]))
    assert level._own("a", 105) == (7.0, 20.0)
    assert level._own("a", 103) == (5.0, 0.0)  # inside the 3 kept days; that forecast was replaced
    assert level._own("a", 102) == (0.0, 0.0)  # left the window
    # The day totals are the sums of the final counts; a SKU's own share is left out.
    assert level._obs_total[105] == 7.0 + 61.0 and level._obs_total[101] == 3.0 + 21.0
    assert level.level(["a"], np.array([[105]]), np.ones((1, 1)), np.array([[106]]))[0, 0] == pytest.approx(61.0 / 20.0)
    # A late update for a day before the window changes nothing.
    level.update(["a"], np.array([101]), np.array([[20.0, 20.0]]), np.array([99.0]))
    assert level._obs_total[101] == 24.0 and level._own("a", 105) == (7.0, 0.0)


class _ReferenceLevel:
    """MarketLevel's bookkeeping written the plain way, one SKU and one day at a time."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.rows: dict[str, tuple[int, list[float], int, list[float]]] = {}
        self.exp: dict[int, float] = {}
        self.obs: dict[int, float] = {}

    def update(self, sku: str, day: int, expected: list[float], observed: float) -> None:
        keep, counts, last = self.keep, [0.0] * self.keep, day
        if sku in self.rows:
            old_day, old_exp, last, counts = self.rows[sku]
            counts = list(counts)
            for k, v in enumerate(old_exp):
                if old_day + k >= day:
                    self.exp[old_day + k] = self.exp.get(old_day + k, 0.0) - v
        for k, v in enumerate(expected):
            self.exp[day + k] = self.exp.get(day + k, 0.0) + v
        if day > last:
            for d in range(max(last + 1, day - keep + 1), day + 1):
                counts[d % keep] = 0.0
            last = day
        if day > last - keep:
            self.obs[day] = self.obs.get(day, 0.0) - counts[day % keep] + observed
            counts[day % keep] = observed
        self.rows[sku] = (day, list(expected), last, counts)

    def own(self, sku: str, day: int) -> tuple[float, float]:
        if sku not in self.rows:
            return 0.0, 0.0
        start, exp, last, counts = self.rows[sku]
        own_exp = exp[day - start] if 0 <= day - start < len(exp) else 0.0
        own_obs = counts[day % self.keep] if last - self.keep < day <= last else 0.0
        return own_obs, own_exp


def test_market_level_matches_a_plain_per_sku_reference_over_random_batches() -> None:
    rng = np.random.default_rng(7)
    level, ref = MarketLevel(prior=5.0, keep_days=4), _ReferenceLevel(keep=4)
    skus = [f"s{i}" for i in range(30)]
    for _ in range(200):
        batch = list(rng.choice(skus, size=int(rng.integers(1, 12)), replace=False))
        days = rng.integers(100, 112, size=len(batch))  # out of order and repeated days too
        expected = rng.integers(0, 9, size=(len(batch), 3)).astype(np.float32)
        observed = rng.integers(0, 20, size=len(batch)).astype(np.float32)
        level.update(batch, days, expected, observed)
        for i, sku in enumerate(batch):
            ref.update(sku, int(days[i]), expected[i].tolist(), float(observed[i]))
    for d in range(95, 118):
        assert level._exp_total.get(d, 0.0) == pytest.approx(ref.exp.get(d, 0.0), abs=1e-6)
        assert level._obs_total.get(d, 0.0) == pytest.approx(ref.obs.get(d, 0.0), abs=1e-6)
        for sku in [*skus, "unseen"]:
            assert level._own(sku, d) == pytest.approx(ref.own(sku, d))
    window = np.arange(104, 112)[None, :].repeat(len(skus), axis=0)
    got = level.level(skus, window, np.full((len(skus), 1), 0.5), np.full((len(skus), 1), 111))
    for i, sku in enumerate(skus):
        for j, d in enumerate(range(104, 112)):
            own_obs, own_exp = ref.own(sku, d)
            exp = ref.exp.get(d, 0.0) - own_exp
            want = market_level(np.array([max(ref.obs.get(d, 0.0) - own_obs, 0.0)]),
                                np.array([max(exp * (0.5 if d == 111 else 1.0), 0.0)]), prior=5.0)[0]
            assert got[i, j] == pytest.approx(want)


def test_profiles_of_a_few_categories_match_the_full_table_and_the_decay() -> None:
    rng = np.random.default_rng(3)
    learner = ProfileLearner(prior_mass=5.0, max_mass=15.0)
    cats = [f"c{i}" for i in range(40)] + [None]
    for _ in range(30):
        picked = [cats[i] for i in rng.integers(0, len(cats), size=200)]
        learner.observe(picked, rng.integers(15000, 15007, size=200), rng.integers(0, 24, size=200))
    # Every category past max_mass is scaled back to it on the batch that counted into it.
    assert learner._counts.sum(axis=2).max() == pytest.approx(15.0)
    full = learner.shares()
    rows = learner.rows_for(["c3", None, "unseen", "c39", "c3"])
    assert np.array_equal(learner.shares_for(rows), full[rows])


def test_share_at_several_hours_equals_one_moment_at_a_time() -> None:
    from worker.detection import DetectionContext, LocalMoment

    ctx = DetectionContext("Europe/London", max_watched=10)
    rng = np.random.default_rng(5)
    cats = ["toys", "garden", None]
    ctx.profiles.observe([cats[i] for i in rng.integers(0, 3, size=500)], rng.integers(15000, 15007, size=500),
                         rng.integers(0, 24, size=500))
    skus_cats = ["garden", None, "toys", "unknown"]
    day = np.array([15001, 15002, 15003, 15004])
    hours = day[:, None] * 24 + np.array([[0, 5, 9], [3, 12, 23], [7, 8, 9], [1, 2, 22]])
    got = ctx.share_at_hours(skus_cats, day, hours)
    for j in range(3):
        one = ctx.share(skus_cats, LocalMoment(day, hours[:, j], np.zeros(4)))
        assert np.allclose(got[:, j], one)
    full = ctx.profiles.shares()
    rows = ctx.profiles.rows_for(skus_cats)
    from model.nowcast import share_seen

    assert np.allclose(got[:, 1], share_seen(full, rows, day, hours[:, 1] % 24, np.zeros(4)))
