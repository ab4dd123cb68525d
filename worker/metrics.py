"""Prometheus metrics of the worker (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter("skucast_events_consumed_total", "Order messages consumed")
EVENTS_APPLIED = Counter("skucast_events_applied_total", "Order events counted into windows")
EVENTS_FENCED = Counter("skucast_events_redelivered_total", "Redelivered events skipped by offset fencing")
EVENTS_DUPLICATE = Counter("skucast_events_duplicate_total", "Duplicate order ids counted once")
DEAD_LETTERS = Counter("skucast_dead_letters_total", "Messages sent to the DLQ", ["reason"])
LATE_EVENTS = Counter("skucast_late_events_total", "Events beyond the grace period", ["reason"])
FORECASTS = Counter("skucast_forecasts_emitted_total", "Forecast events published")
ALERTS = Counter("skucast_alerts_total", "Alert events published", ["severity", "state"])
BATCH_SIZE = Histogram(
    "skucast_batch_events", "Events per micro-batch", buckets=(1, 8, 64, 256, 1024, 4096, 16384)
)
BATCH_SECONDS = Histogram(
    "skucast_batch_seconds", "Micro-batch processing time, decode to outputs handed to delivery",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
)
DELIVERY_SECONDS = Histogram(
    "skucast_delivery_seconds", "A batch's outputs handed over to acknowledged (after the previous batch's)",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
)
REDIS_SECONDS = Histogram("skucast_redis_seconds", "Window store round trips", ["op"])
INFERENCE_SECONDS = Histogram("skucast_inference_seconds", "Batched model calls")
FORECAST_MEMO_HITS = Counter("skucast_forecast_memo_hits_total", "Forecast rows reused, inputs unchanged")
MODEL_INFO = Gauge("skucast_model_info", "Loaded model (value 1)", ["version", "device"])
RETRIES = Counter("skucast_retries_total", "Batches retried after a service error", ["service"])
CONSUMER_LAG = Gauge("skucast_consumer_lag", "Orders not yet consumed, per partition", ["partition"])
MODEL_RELOADS = Counter("skucast_model_reloads_total", "New models seen in the registry", ["result"])
ASSIGNED_PARTITIONS = Gauge("skucast_assigned_partitions", "Orders partitions this worker owns")
