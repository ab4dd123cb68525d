#!/usr/bin/env bash
# The test command (`make test`): lint + types, then all test tiers. The test session starts the
# real Kafka and Redis itself through `skucast services up` (see tests/conftest.py).
set -uo pipefail
VENV="${1:-$(bash "$(dirname "$0")/bootstrap.sh")}"
cd "$(dirname "$0")/.."
bash scripts/system_deps.sh || exit 1
"$VENV/bin/ruff" check streams model worker tests benchmarks || exit 1
"$VENV/bin/mypy" || exit 1
"$VENV/bin/python" -m pytest "${@:2}"
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"
