"""The query API and the dashboard, served by the worker's Faust web server.

Every answer is read from Redis (the window store and :class:`streams.latest_store.LatestOutputs`),
so any worker answers for any SKU, whichever worker owns its partition. Routes (see
``/openapi.json``)::

    GET /skus?top=8                     top moving SKUs with their latest forecasts
    GET /skus/{sku}/forecast            latest ForecastEvent (404 for an unknown SKU)
    GET /skus/{sku}/history?grain=day|hour&n=56
    GET /alerts?state=open|all&n=50
    GET /health                         Kafka, Redis, model; 503 when a dependency is down
    GET /openapi.json
    GET /dashboard, /dashboard/{asset}  the live dashboard (static HTML + JS, no build step)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

import faust
from prometheus_client import Counter
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streams.buckets import day_to_date, hour_to_local
from streams.contracts import AlertEvent, ForecastEvent
from streams.latest_store import LatestOutputs
from streams.window_store import SkuMeta, WindowStore
from worker.api_models import (
    Alerts,
    ApiError,
    Bucket,
    Health,
    History,
    KafkaHealth,
    Mover,
    Movers,
    openapi_spec,
)
from worker.settings import Settings

log = logging.getLogger("skucast.http")

ROUTES: tuple[str, ...] = (
    "/skus",
    "/skus/{sku}/forecast",
    "/skus/{sku}/history",
    "/alerts",
    "/health",
    "/openapi.json",
    "/dashboard",
    "/dashboard/{asset}",
)
"""Every path :func:`register_routes` serves (``/metrics`` is served by :mod:`worker.app`)."""

ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
MAX_TOP = 200
MAX_RECENT_ALERTS = 200
KAFKA_CONNECT_TIMEOUT_S = 1.0
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)

OUTPUT_STORE_ERRORS = Counter(
    "skucast_latest_store_errors_total", "Batches whose outputs could not be stored for the query API"
)

OnOutputs = Callable[[list[ForecastEvent], list[AlertEvent], list[bytes]], Awaitable[None]]
"""(forecasts, alerts, each forecast's JSON as sent to Kafka)."""


def latest_outputs(settings: Settings, client: Any) -> LatestOutputs:
    """The latest-outputs store the API reads, keyed beside the window store."""
    return LatestOutputs(client, settings.redis_prefix, max_recent_alerts=MAX_RECENT_ALERTS,
                         forecast_ttl_s=settings.sku_idle_ttl_days * 86_400)


def output_recorder(latest: LatestOutputs, attempts: int = 3) -> OnOutputs:
    """The pipeline's ``on_outputs`` hook: store a batch's outputs, retrying briefly.

    Best effort on purpose: the batch is already in Redis and on Kafka, and a retry of the whole
    batch would be fenced (no outputs at all), so a failure here is logged and counted instead.
    """

    async def record(forecasts: list[ForecastEvent], alerts: list[AlertEvent], forecast_json: list[bytes]) -> None:
        for attempt in range(attempts):
            try:
                await latest.record(forecasts, alerts, forecast_json)
                return
            except REDIS_ERRORS as exc:
                if attempt == attempts - 1:
                    OUTPUT_STORE_ERRORS.inc()
                    log.warning("could not store %d forecasts / %d alerts for the query API: %s",
                                len(forecasts), len(alerts), exc)
                    return
                await asyncio.sleep(0.2 * 2**attempt)

    return record


class ApiFailure(Exception):
    """Turned into a JSON error response with ``status``."""

    def __init__(self, status: int, message: str, sku: str | None = None) -> None:
        super().__init__(message)
        self.status, self.body = status, ApiError(error=message, sku=sku)


def int_param(query: Any, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiFailure(400, f"{name} must be an integer between {low} and {high}, got {raw!r}") from None
    if not low <= value <= high:
        raise ApiFailure(400, f"{name} must be between {low} and {high}, got {value}")
    return value


def history_body(sku: str, grain: str, end: int, units: Sequence[float], orders: Sequence[float],
                 revenue_milli: Sequence[float], meta: SkuMeta, tz: str) -> History:
    """History response: bucket ``end`` is the last of ``len(units)`` consecutive buckets."""
    first = end - len(units) + 1
    label: Callable[[int], str] = (
        (lambda b: day_to_date(b).isoformat()) if grain == "day"
        else (lambda b: hour_to_local(b).isoformat(timespec="minutes"))
    )
    return History(
        sku=sku,
        grain=grain,  # type: ignore[arg-type]  # validated by the caller
        timezone=tz,
        watermark=datetime.fromtimestamp(meta.watermark_ts, UTC),
        first_seen=datetime.fromtimestamp(meta.first_seen_ts, UTC),
        buckets=[
            Bucket(start=label(first + i), units=int(u), orders=int(o), revenue=round(float(r) / 1000, 3))
            for i, (u, o, r) in enumerate(zip(units, orders, revenue_milli, strict=True))
        ],
    )


async def kafka_health(bootstrap: str, assigned: int | None) -> KafkaHealth:
    """Reachable: a TCP connection to some bootstrap broker opens. Plus this worker's assignment."""
    reachable = False
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), KAFKA_CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        reachable = True
        break
    return KafkaHealth(reachable=reachable, bootstrap=bootstrap, assigned_partitions=assigned)


def register_routes(
    app: faust.App,
    store: WindowStore,
    latest: LatestOutputs,
    settings: Settings,
    *,
    model_version: Callable[[], str],
    assigned_partitions: Callable[[], int | None] = lambda: None,
) -> None:
    """Serve the query API and dashboard on ``app``'s web server (see the module doc)."""
    max_days, max_hours = settings.day_retention, settings.hour_retention_days * 24
    static = files("worker").joinpath("static")

    def page(path: str) -> Callable[[Callable[..., Awaitable[Any]]], Any]:
        """``app.page`` whose handler may raise :class:`ApiFailure` or fail on Redis."""

        def decorate(handler: Callable[..., Awaitable[Any]]) -> Any:
            async def view(web: Any, request: Any, **match: str) -> Any:
                try:
                    return await handler(web, request, **match)
                except ApiFailure as exc:
                    return web.json(exc.body.model_dump(mode="json"), status=exc.status)
                except REDIS_ERRORS as exc:
                    body = ApiError(error=f"Redis at {settings.redis_address} unavailable: {exc}")
                    return web.json(body.model_dump(mode="json"), status=503)

            view.__name__ = handler.__name__
            return app.page(path)(view)

        return decorate

    def ok(web: Any, body: Any) -> Any:
        return web.json(body.model_dump(mode="json"))

    @page("/skus")
    async def movers_view(web: Any, request: Any) -> Any:
        top = await latest.top_movers(int_param(request.query, "top", 8, 1, MAX_TOP))
        forecasts = await latest.forecasts([sku for sku, _ in top])
        return ok(web, Movers(skus=[Mover(sku=s, expected_units=round(score, 3), forecast=fc)
                                    for (s, score), fc in zip(top, forecasts, strict=True)]))

    @page("/skus/{sku}/forecast")
    async def forecast_view(web: Any, request: Any, sku: str) -> Any:
        forecast = await latest.forecast(sku)
        if forecast is None:
            raise ApiFailure(404, f"no forecast for SKU {sku!r}: unknown SKU, or none made yet", sku)
        return ok(web, forecast)

    @page("/skus/{sku}/history")
    async def history_view(web: Any, request: Any, sku: str) -> Any:
        grain = request.query.get("grain", "day")
        if grain not in ("day", "hour"):
            raise ApiFailure(400, f"grain must be 'day' or 'hour', got {grain!r}", sku)
        n = int_param(request.query, "n", 56 if grain == "day" else 48, 1, max_days if grain == "day" else max_hours)
        if grain == "day":
            w = await store.read_days([sku], n)
            end, units, orders, revenue, meta = w.end_day[0], w.units[0], w.orders[0], w.revenue_milli[0], w.meta[0]
        else:
            h = await store.read_hours([sku], n)
            end, units, orders, revenue, meta = h.end_hour[0], h.units[0], h.orders[0], h.revenue_milli[0], h.meta[0]
        if meta is None:
            raise ApiFailure(404, f"unknown SKU {sku!r}: no orders counted for it", sku)
        return ok(web, history_body(sku, grain, int(end), units.tolist(), orders.tolist(), revenue.tolist(),
                                    meta, settings.market_timezone))

    @page("/alerts")
    async def alerts_view(web: Any, request: Any) -> Any:
        state = request.query.get("state", "open")
        if state == "open":
            return ok(web, Alerts(state="open", alerts=await latest.open_alerts()))
        if state == "all":
            n = int_param(request.query, "n", 50, 1, MAX_RECENT_ALERTS)
            return ok(web, Alerts(state="all", alerts=await latest.recent_alerts(n)))
        raise ApiFailure(400, f"state must be 'open' or 'all', got {state!r}")

    @app.page("/health")
    async def health_view(web: Any, request: Any) -> Any:
        try:
            redis_ok = await latest.ping()
        except REDIS_ERRORS:
            redis_ok = False
        kafka = await kafka_health(settings.kafka_bootstrap, assigned_partitions())
        healthy = redis_ok and kafka.reachable
        body = Health(status="ok" if healthy else "degraded", redis=redis_ok, kafka=kafka.reachable,
                      model=model_version(), kafka_detail=kafka)
        return web.json(body.model_dump(mode="json"), status=200 if healthy else 503)

    @app.page("/openapi.json")
    async def openapi_view(web: Any, request: Any) -> Any:
        return web.json(openapi_spec(model_version(), max_days, max_hours))

    @app.page("/dashboard")
    async def dashboard_view(web: Any, request: Any) -> Any:
        # Read per request: cheap, and an edited page shows without restarting the worker.
        return web.html(static.joinpath("dashboard.html").read_text(encoding="utf-8"))

    @app.page("/dashboard/{asset}")
    async def asset_view(web: Any, request: Any, asset: str) -> Any:
        if asset not in ASSETS:
            return web.json({"error": f"no asset {asset!r}"}, status=404)
        return web.text(static.joinpath(asset).read_text(encoding="utf-8"), content_type=ASSETS[asset])
