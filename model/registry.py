"""Model registry on disk: TorchScript file + JSON metadata + a ``LATEST`` pointer.

Layout of a model directory::

    <version>.pt     TorchScript module (loads with torch.jit.load alone)
    <version>.json   metadata, including the sha256 of <version>.pt
    LATEST           the newest version's name, one line

``version`` is ``lstm-<UTC time of training, %Y%m%d%H%M%S>-<first 7 hex of the .pt sha256>``.
Loading verifies the checksum *before* ``torch.jit.load`` and never imports the training code.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

LATEST = "LATEST"
REQUIRED_METADATA = ("version", "sha256", "quantiles", "horizon", "lookback", "features")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ModelError(RuntimeError):
    """The model directory cannot give a trustworthy model (missing, corrupt, inconsistent)."""


@dataclass(frozen=True)
class ExportedModel:
    version: str
    model_path: Path
    metadata_path: Path
    sha256: str


@dataclass(frozen=True)
class LoadedModel:
    version: str
    module: torch.jit.ScriptModule
    metadata: dict[str, Any]
    device: torch.device
    model_path: Path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def script_bytes(model: nn.Module) -> bytes:
    """TorchScript-compile ``model`` (in eval mode, on CPU) and serialise it."""
    model = model.cpu().eval()
    with warnings.catch_warnings():
        # torch 2.x marks torch.jit as deprecated; it is still the format that loads without
        # Python source (torch.export cannot load without the model code yet for LSTMs).
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(model)
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
    return buffer.getvalue()


def export_model(
    model: nn.Module, out_dir: str | Path, trained_at: datetime, metadata: dict[str, Any]
) -> ExportedModel:
    """Write ``<version>.pt`` and ``<version>.json`` to ``out_dir`` and point ``LATEST`` at them."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = script_bytes(model)
    digest = _sha256(payload)
    stamp = trained_at.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    version = f"lstm-{stamp}-{digest[:7]}"
    meta = {
        **metadata,
        "version": version,
        "created_at": trained_at.astimezone(UTC).isoformat(),
        "sha256": digest,
        "torch_version": torch.__version__,
    }
    model_path, metadata_path = out / f"{version}.pt", out / f"{version}.json"
    _atomic_write(model_path, payload)
    _atomic_write(metadata_path, json.dumps(meta, indent=2, sort_keys=True).encode())
    _atomic_write(out / LATEST, f"{version}\n".encode())  # last: readers never see a half model
    return ExportedModel(version, model_path, metadata_path, digest)


def latest_version(model_dir: str | Path) -> str:
    pointer = Path(model_dir) / LATEST
    if not pointer.is_file():
        raise ModelError(f"no trained model in {model_dir}: {pointer} is missing; train one with `skucast train`")
    version = pointer.read_text().strip()
    if not _VERSION_RE.match(version):
        raise ModelError(f"{pointer} does not name a model version: {version!r}")
    return version


def read_metadata(model_dir: str | Path, version: str) -> dict[str, Any]:
    path = Path(model_dir) / f"{version}.json"
    if not path.is_file():
        raise ModelError(f"model metadata {path} is missing; retrain with `skucast train`")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"model metadata {path} is unreadable ({exc}); retrain with `skucast train`") from exc
    missing = [key for key in REQUIRED_METADATA if key not in meta] if isinstance(meta, dict) else ["*"]
    if missing:
        raise ModelError(f"model metadata {path} lacks {', '.join(missing)}; retrain with `skucast train`")
    if meta["version"] != version:
        raise ModelError(f"model metadata {path} is for version {meta['version']!r}, not {version!r}")
    return dict(meta)


def load_version(model_dir: str | Path, version: str, device: str | torch.device = "cpu") -> LoadedModel:
    """Load one version after checking its file against the sha256 in its metadata."""
    meta = read_metadata(model_dir, version)
    model_path = Path(model_dir) / f"{version}.pt"
    meta_path = model_path.with_suffix(".json")
    if not model_path.is_file():
        raise ModelError(f"model file {model_path} is missing; retrain with `skucast train`")
    payload = model_path.read_bytes()
    actual = _sha256(payload)
    if actual != meta["sha256"]:
        raise ModelError(
            f"model file {model_path} does not match the checksum in {meta_path}: "
            f"expected {meta['sha256']} got {actual}; retrain with `skucast train`"
        )
    target = torch.device(device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # see script_bytes
            module = torch.jit.load(io.BytesIO(payload), map_location=target)
    except RuntimeError as exc:
        raise ModelError(f"model file {model_path} cannot be loaded: {exc}") from exc
    module.eval()
    return LoadedModel(version, module, meta, target, model_path)


def load_latest(model_dir: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load the version named by ``<model_dir>/LATEST``; :class:`ModelError` when anything is off."""
    return load_version(model_dir, latest_version(model_dir), device)
