"""The query API's wiring without services: every route registered is described in the OpenAPI
document and vice versa, and the small request helpers reject bad input precisely."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest
import redis.asyncio as aioredis

from streams.latest_store import LatestOutputs
from streams.redis_window_store import RedisWindowStore
from streams.window_store import SkuMeta
from worker.api_models import openapi_spec
from worker.http_api import ROUTES, ApiFailure, history_body, int_param, register_routes
from worker.settings import Settings


def registered_paths(tmp_path: Path) -> set[str]:
    settings = Settings(state_dir=tmp_path, redis_prefix="unit")
    app = faust.App("http-api-unit", broker="kafka://127.0.0.1:1", datadir=str(tmp_path / "faust"),
                    web_enabled=True, web_port=1)
    client = aioredis.Redis(host="127.0.0.1", port=1)  # never contacted: only routes are built
    store = RedisWindowStore(client, "unit", grace_s=0, dedup_horizon_s=1, day_retention=60,
                             hour_retention=1, idle_ttl_s=1)
    register_routes(app, store, LatestOutputs(client, "unit"), settings, model_version=lambda: "v-test")
    router = app.web.web_app.router  # type: ignore[attr-defined]  # the aiohttp driver's application
    return {route.resource.canonical for route in router.routes() if route.resource}


def test_every_registered_route_is_in_the_openapi_document(tmp_path: Path) -> None:
    served = registered_paths(tmp_path)
    assert served == set(ROUTES)
    spec = openapi_spec("v-test", max_days=420, max_hours=504)
    assert set(spec["paths"]) == served | {"/metrics"}  # /metrics is registered by worker.app
    for path, item in spec["paths"].items():
        assert "200" in item["get"]["responses"], path
        if "{sku}" in path:
            assert item["get"]["responses"]["404"], path


def test_openapi_schemas_resolve() -> None:
    spec = openapi_spec("v-test", max_days=420, max_hours=504)
    schemas = spec["components"]["schemas"]
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    assert refs
    for ref in refs:
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


@pytest.mark.parametrize(("raw", "message"), [("x", "must be an integer"), ("0", "between 1 and 10"),
                                              ("11", "between 1 and 10")])
def test_int_param_rejects_bad_values(raw: str, message: str) -> None:
    with pytest.raises(ApiFailure) as err:
        int_param({"n": raw}, "n", 5, 1, 10)
    assert err.value.status == 400 and message in err.value.body.error


def test_int_param_default_and_value() -> None:
    assert int_param({}, "n", 5, 1, 10) == 5
    assert int_param({"n": "7"}, "n", 5, 1, 10) == 7


def test_history_body_labels_buckets_in_market_time() -> None:
    meta = SkuMeta("A", first_seen_ts=0.0, watermark_ts=86_400.0 * 3, category=None, last_price=1.0,
                   watermark_day=3, watermark_hour=72)
    days = history_body("A", "day", 3, [1, 0, 2], [1, 0, 1], [1500, 0, 2250], meta, "Europe/London")
    assert [b.start for b in days.buckets] == ["1970-01-02", "1970-01-03", "1970-01-04"]
    assert [b.revenue for b in days.buckets] == [1.5, 0.0, 2.25]
    hours = history_body("A", "hour", 72, [0, 4], [0, 2], [0, 4000], meta, "Europe/London")
    assert [b.start for b in hours.buckets] == ["1970-01-03T23:00", "1970-01-04T00:00"]
