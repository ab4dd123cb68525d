#!/usr/bin/env bash
# The main job (`make demo`): real Kafka + Redis, a model trained on real orders, the worker, and
# a replay of real Online Retail orders; forecasts and alerts print as they arrive.
set -euo pipefail
VENV="${1:-$(bash "$(dirname "$0")/bootstrap.sh")}"
cd "$(dirname "$0")/.."
SK="$VENV/bin/skucast"
# The demo's own namespace (topics, consumer group, Redis keys), wiped at the start of every run:
# a second run replays the same orders into a fresh state instead of into the first run's.
export SKUCAST_APP_ID=skucast-demo SKUCAST_TOPIC_PREFIX=demo. SKUCAST_REDIS_PREFIX=demo
SKUCAST_NAMESPACE_HINT="SKUCAST_APP_ID=$SKUCAST_APP_ID SKUCAST_TOPIC_PREFIX=$SKUCAST_TOPIC_PREFIX SKUCAST_REDIS_PREFIX=$SKUCAST_REDIS_PREFIX"
LOGS="${SKUCAST_STATE_DIR:-$HOME/.cache/skucast}/run/demo"
mkdir -p "$LOGS"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$SK" services up
"$SK" reset --yes
"$SK" train --if-missing
# The model's alert thresholds, calibrated once on a backtest (1 false alarm per 1,000 SKU-days).
MODELS="${SKUCAST_MODEL_DIR:-models}"
[ -f "$MODELS/$(cat "$MODELS/LATEST").alerts.json" ] || "$SK" evaluate-alerts --model-dir "$MODELS"
"$SK" worker >"$LOGS/worker.log" 2>&1 &
pids+=($!)
echo "worker started (log: $LOGS/worker.log); waiting for it to serve http://127.0.0.1:${SKUCAST_WEB_PORT:-6066}/health"
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:${SKUCAST_WEB_PORT:-6066}/health" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$LOGS/worker.log"; exit 1; }
  sleep 1
done

echo "== warming the windows: Sep–Nov 2011 as fast as possible =="
"$SK" replay --speed 0 --from 2011-09-01 --to 2011-11-28
sleep 3
echo "== live: 28 Nov – 9 Dec 2011 at 4 shop hours per second; forecasts (sample) and alerts below =="
"$SK" tail alerts &
pids+=($!)
"$SK" tail forecasts --max 40 &
pids+=($!)
"$SK" replay --speed 14400 --from 2011-11-28 --to 2011-12-10
sleep 5
echo "== done. Services stay up: '$SKUCAST_NAMESPACE_HINT skucast tail alerts --from-beginning' to see every alert, 'skucast services down' to stop. =="
