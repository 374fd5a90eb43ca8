#!/usr/bin/env bash
# Data-size ladder with a real small model on a GPU machine:
#
#   BASE_MODEL=/models/Qwen2.5-0.5B-Instruct bench/gpu_ladder.sh
#
# With no GPU, or no BASE_MODEL, the same ladder runs with the offline tiny student on CPU
# with small sizes (that is how the test suite runs this script). Every knob is an
# environment variable; the defaults depend on the mode.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
export TRANSFORMERS_OFFLINE=${TRANSFORMERS_OFFLINE:-1}
export PREFECT_SERVER_ANALYTICS_ENABLED=false

HAS_GPU=$("$BIN/python" -c "import torch; print(int(torch.cuda.is_available()))")
if [[ "$HAS_GPU" == 1 && -n "${BASE_MODEL:-}" ]]; then
    MODE=gpu
    BASE=$BASE_MODEL
    SIZES=${SIZES:-250,1000,4000}
    MAX_STEPS=${MAX_STEPS:-300}
    BATCH=${BATCH:-16}
    EVAL_N=${EVAL_N:-500}
    N=${N:-6000}
    LORA=${LORA:---lora}
    LR=${LR:-2e-4}
else
    MODE=cpu
    BASE=tiny
    SIZES=${SIZES:-100,400}
    MAX_STEPS=${MAX_STEPS:-60}
    BATCH=${BATCH:-8}
    EVAL_N=${EVAL_N:-50}
    N=${N:-600}
    LORA=${LORA:-}
    LR=${LR:-1e-3}
fi
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-256}
WAREHOUSE=${WAREHOUSE:-data/gpu_ladder.duckdb}
OUTPUT_ROOT=${OUTPUT_ROOT:-data/models}
LARGEST=$(tr ',' '\n' <<<"$SIZES" | sort -n | tail -1)

echo "gpu_ladder: mode=$MODE base=$BASE sizes=$SIZES steps=$MAX_STEPS batch=$BATCH" \
     "eval_n=$EVAL_N warehouse=$WAREHOUSE"

# A snapshot large enough for the largest rung (a refresh is idempotent: rerunning adds nothing).
HAVE=$("$BIN/distillery" sql "select count(*) from curated" --format csv \
       --warehouse "$WAREHOUSE" 2>/dev/null | tail -1 || echo 0)
if [[ ! "$HAVE" =~ ^[0-9]+$ ]] || (( HAVE < LARGEST )); then
    "$BIN/distillery" refresh --source procedural --n "$N" --seed 7 --warehouse "$WAREHOUSE"
fi

# shellcheck disable=SC2086  # $LORA is empty or one flag
"$BIN/distillery" ladder --sizes "$SIZES" --strategy random --eval procedural-heldout \
    --eval-n "$EVAL_N" --base-model "$BASE" $LORA --max-steps "$MAX_STEPS" \
    --batch-size "$BATCH" --lr "$LR" --max-new-tokens "$MAX_NEW_TOKENS" \
    --output-root "$OUTPUT_ROOT" --warehouse "$WAREHOUSE"
