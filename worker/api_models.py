"""Response bodies of the query API and its OpenAPI 3 description, generated from them.

The handlers in :mod:`worker.http_api` build these models and serve ``model_dump(mode="json")``,
so the description cannot drift from what is served.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from streams.contracts import AlertEvent, ForecastEvent


class ApiError(BaseModel):
    error: str = Field(description="what went wrong, for a person")
    sku: str | None = None


class Bucket(BaseModel):
    start: str = Field(description="market-local date (day grain) or wall-clock hour start (hour grain)")
    units: int
    orders: int = Field(description="order lines counted")
    revenue: float = Field(description="revenue in the order currency")


class History(BaseModel):
    sku: str
    grain: Literal["day", "hour"]
    timezone: str = Field(description="the market timezone the buckets are local to")
    watermark: datetime = Field(description="latest event time counted for the SKU")
    first_seen: datetime
    buckets: list[Bucket] = Field(description="oldest first; the last one is the watermark bucket")


class Mover(BaseModel):
    sku: str
    expected_units: float = Field(description="p50 forecast summed over the next 7 days")
    forecast: ForecastEvent | None


class Movers(BaseModel):
    skus: list[Mover]


class Alerts(BaseModel):
    state: Literal["open", "all"]
    alerts: list[AlertEvent] = Field(description="open: most severe first; all: newest first")


class KafkaHealth(BaseModel):
    reachable: bool
    bootstrap: str
    assigned_partitions: int | None = Field(description="orders partitions this worker consumes")


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    redis: bool
    kafka: bool
    model: str = Field(description="version of the model in use")
    kafka_detail: KafkaHealth


def _op(summary: str, schema: str | None, *, params: list[dict[str, Any]] | None = None,
        not_found: bool = False, content_type: str = "application/json",
        extra: dict[str, Any] | None = None) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK"}
    ok["content"] = {content_type: {"schema": {"$ref": f"#/components/schemas/{schema}"}} if schema else {}}
    responses: dict[str, Any] = {"200": ok}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}
    if params and any(p["in"] == "query" for p in params):
        responses["400"] = {"description": "Bad query parameter", "content": error}
    if not_found:
        responses["404"] = {"description": "Unknown SKU", "content": error}
    return {"get": {"summary": summary, "parameters": params or [], "responses": {**responses, **(extra or {})}}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


SKU_PARAM = {"name": "sku", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "SKU id, percent-encoded"}


def openapi_spec(version: str, max_days: int, max_hours: int) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route :func:`worker.http_api.register_routes` serves."""
    _, defs = models_json_schema(
        [(m, "serialization") for m in (ApiError, History, Movers, Alerts, Health, ForecastEvent)],
        ref_template="#/components/schemas/{model}",
    )
    grain = _query("grain", "bucket size", {"type": "string", "enum": ["day", "hour"], "default": "day"})
    n_buckets = _query("n", f"buckets to return (day ≤ {max_days}, hour ≤ {max_hours})",
                       {"type": "integer", "minimum": 1, "default": 56})
    paths = {
        "/skus": _op("Top moving SKUs with their latest forecasts", "Movers",
                     params=[_query("top", "how many", {"type": "integer", "minimum": 1, "maximum": 200,
                                                        "default": 8})]),
        "/skus/{sku}/forecast": _op("Latest forecast of a SKU", "ForecastEvent", params=[SKU_PARAM],
                                    not_found=True),
        "/skus/{sku}/history": _op("Demand history of a SKU from the window store", "History",
                                   params=[SKU_PARAM, grain, n_buckets], not_found=True),
        "/alerts": _op("Open alerts, or the most recent alert events", "Alerts",
                       params=[_query("state", "open alerts or every recent event",
                                      {"type": "string", "enum": ["open", "all"], "default": "open"}),
                               _query("n", "events to return for state=all",
                                      {"type": "integer", "minimum": 1, "maximum": 200, "default": 50})]),
        "/health": _op("Kafka, Redis and model status", "Health",
                       extra={"503": {"description": "A dependency is down",
                                      "content": {"application/json": {"schema": {
                                          "$ref": "#/components/schemas/Health"}}}}}),
        "/openapi.json": _op("This document", None),
        "/metrics": _op("Prometheus metrics", None, content_type="text/plain"),
        "/dashboard": _op("The live dashboard (HTML)", None, content_type="text/html"),
        "/dashboard/{asset}": _op("Dashboard script and style sheet", None, content_type="text/plain",
                                  params=[{"name": "asset", "in": "path", "required": True,
                                           "schema": {"type": "string", "enum": ["dashboard.js", "dashboard.css"]}}],
                                  extra={"404": {"description": "No such asset"}}),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "skucast worker API", "version": version,
                 "description": "Latest forecasts, demand history, alerts and health of a skucast worker. "
                                "Any worker answers for any SKU: everything is read from Redis."},
        "paths": paths,
        "components": {"schemas": defs["$defs"]},
    }
