"""Model hot reload: watch the registry's ``LATEST`` pointer and swap in a new model, or refuse it.

A new version is loaded off the event loop (:meth:`ModelWatcher.check` runs in a thread), checked,
and only then handed over; the pipeline switches between batches. It is refused — with one
error log line, a metric, and the old model kept — when its file does not match the sha256 in its
metadata, its metadata does not match the code (features), it cannot be loaded, or a smoke
forecast does not come out with the shape and properties its metadata promises. A refused version
is not retried until its files change.

Example::

    watcher = ModelWatcher(settings, current_version=forecaster.version)
    swap = await watcher.poll()          # None, or (new Forecaster, its alert thresholds)
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np

from model.predictor import Forecaster, resolve_device
from model.registry import ModelError, latest_version, load_version
from model.thresholds import Thresholds
from worker import metrics
from worker.alerting import thresholds_for
from worker.settings import Settings

log = logging.getLogger("skucast.model_watch")

Swap = tuple[Forecaster, Thresholds]


def _fingerprint(model_dir: Path, version: str) -> tuple[int, ...]:
    """Changes when the version's files are rewritten (so a fixed file is tried again)."""
    stats = []
    for suffix in (".pt", ".json"):
        path = model_dir / f"{version}{suffix}"
        st = path.stat() if path.exists() else None
        stats += [st.st_mtime_ns, st.st_size] if st else [0, 0]
    return tuple(stats)


def smoke_test(forecaster: Forecaster) -> None:
    """A forecast of two zero histories must have the promised shape, be finite, monotone, >= 0."""
    spec = getattr(forecaster, "spec", None)
    width = forecaster.lookback + (getattr(spec, "season_lag", None) or 0)
    out = forecaster.predict(np.zeros((2, width), np.float32), np.array([15000, 15001]))
    expected = (2, forecaster.horizon, len(forecaster.quantiles))
    if out.shape != expected:
        raise ModelError(f"model {forecaster.version} forecasts shape {out.shape}, its metadata says {expected}")
    if not np.all(np.isfinite(out)) or np.any(out < 0) or np.any(np.diff(out, axis=-1) < -1e-4):
        raise ModelError(f"model {forecaster.version} forecasts non-finite, negative or non-monotone quantiles")


class ModelWatcher:
    def __init__(self, settings: Settings, current_version: str) -> None:
        self.settings = settings
        self.model_dir = Path(settings.model_dir)
        self.current = current_version
        self.rejected: dict[str, tuple[int, ...]] = {}
        self._pointer_error: str | None = None

    def check(self) -> Swap | None:
        """Blocking: the new model and its thresholds if ``LATEST`` names a good new version."""
        try:
            version = latest_version(self.model_dir)
        except ModelError as exc:
            if str(exc) != self._pointer_error:  # say it once, not every poll
                log.error("model registry unreadable, keeping model %s: %s", self.current, exc)
                self._pointer_error = str(exc)
            return None
        self._pointer_error = None
        if version == self.current:
            return None
        fingerprint = _fingerprint(self.model_dir, version)
        if self.rejected.get(version) == fingerprint:
            return None
        try:
            forecaster = Forecaster(load_version(self.model_dir, version, resolve_device(self.settings.device)))
            smoke_test(forecaster)
            thresholds = thresholds_for(self.settings, self.model_dir, version)
        except (ModelError, ValueError, RuntimeError, OSError, KeyError) as exc:
            self.rejected[version] = fingerprint
            metrics.MODEL_RELOADS.labels("rejected").inc()
            log.error("refused model %s, keeping %s: %s", version, self.current, exc)
            return None
        log.warning("model %s replaces %s", version, self.current)
        metrics.MODEL_RELOADS.labels("loaded").inc()
        self.current = version
        return forecaster, thresholds

    async def poll(self) -> Swap | None:
        """:meth:`check` in a thread, so consuming never waits for a model to load."""
        return await asyncio.get_running_loop().run_in_executor(None, self.check)
