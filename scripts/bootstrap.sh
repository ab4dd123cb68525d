#!/usr/bin/env bash
# Creates (once) and activates a cached virtual environment outside the checkout, keyed by a hash
# of the dependency spec, so torch (several GB) is installed once per spec, not per clone.
# Usage: source scripts/bootstrap.sh   (or run it: prints the venv path)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SKUCAST_CACHE:-$HOME/.cache/skucast}"
PY="${PYTHON:-python3}"
SPEC_HASH="$("$PY" - "$ROOT/pyproject.toml" <<'PYEOF'
import hashlib, json, sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
spec = {"deps": p["dependencies"], "extras": p.get("optional-dependencies", {}), "py": p["requires-python"]}
print(hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16])
PYEOF
)"
VENV="$CACHE/venv-$SPEC_HASH"
if [ ! -f "$VENV/.complete" ]; then
  echo "bootstrap: creating $VENV (first run downloads torch, a few GB)" >&2
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # Install the dependency closure only; the project itself is linked below, per clone.
  "$VENV/bin/python" - "$ROOT/pyproject.toml" > "$CACHE/reqs-$SPEC_HASH.txt" <<'PYEOF'
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
reqs = list(p["dependencies"])
for extra in p.get("optional-dependencies", {}).values():
    reqs += extra
print("\n".join(reqs))
PYEOF
  "$VENV/bin/pip" install -q -r "$CACHE/reqs-$SPEC_HASH.txt"
  touch "$VENV/.complete"
fi
# Link this checkout into the venv (fast, no dependency resolution).
"$VENV/bin/pip" install -q --no-deps --no-build-isolation -e "$ROOT" >/dev/null 2>&1 \
  || { echo "bootstrap: could not install $ROOT into $VENV" >&2; exit 1; }
echo "$VENV"
