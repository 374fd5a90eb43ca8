#!/usr/bin/env bash
# Data-size ladder with a real small model:
#
#   BASE_MODEL=Qwen/Qwen2.5-0.5B-Instruct bench/gpu_ladder.sh   # GPU: full fine-tune, bf16
#   BASE_MODEL=smollm2-135m bench/gpu_ladder.sh                  # GPU as above; CPU: LoRA
#
# With no GPU and no BASE_MODEL, the same ladder runs with the offline tiny student on CPU
# with small sizes (that is how the test suite runs this script). With no GPU and a
# BASE_MODEL, a CPU-sized LoRA ladder (one 200-example rung, top layers only). Every knob is
# an environment variable; the defaults depend on the mode.
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
    LORA=${LORA:---no-lora}
    LR=${LR:-2e-5}
    EPOCHS=${EPOCHS:-3}
    LAYERS=${LAYERS:-0}
elif [[ -n "${BASE_MODEL:-}" ]]; then
    MODE=cpu
    BASE=$BASE_MODEL
    SIZES=${SIZES:-200}
    MAX_STEPS=${MAX_STEPS:-0}
    BATCH=${BATCH:-8}
    EVAL_N=${EVAL_N:-100}
    N=${N:-600}
    LORA=${LORA:---lora}
    LR=${LR:-0}
    EPOCHS=${EPOCHS:-2}
    LAYERS=${LAYERS:-8}
    THREADS=${THREADS:-1}
else
    MODE=cpu
    BASE=tiny
    SIZES=${SIZES:-100,400}
    MAX_STEPS=${MAX_STEPS:-60}
    BATCH=${BATCH:-8}
    EVAL_N=${EVAL_N:-50}
    N=${N:-600}
    LORA=${LORA:---no-lora}
    LR=${LR:-1e-3}
    EPOCHS=${EPOCHS:-1}
    LAYERS=${LAYERS:-0}
fi
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-256}
WAREHOUSE=${WAREHOUSE:-data/gpu_ladder.duckdb}
OUTPUT_ROOT=${OUTPUT_ROOT:-data/models}
LARGEST=$(tr ',' '\n' <<<"$SIZES" | sort -n | tail -1)

echo "gpu_ladder: mode=$MODE base=$BASE sizes=$SIZES steps=$MAX_STEPS epochs=$EPOCHS" \
     "batch=$BATCH lora=$LORA layers=$LAYERS" \
     "eval_n=$EVAL_N warehouse=$WAREHOUSE"

# A snapshot large enough for the largest rung (a refresh is idempotent: rerunning adds nothing).
HAVE=$("$BIN/distillery" sql "select count(*) from curated" --format csv \
       --warehouse "$WAREHOUSE" 2>/dev/null | tail -1 || echo 0)
if [[ ! "$HAVE" =~ ^[0-9]+$ ]] || (( HAVE < LARGEST )); then
    "$BIN/distillery" refresh --source procedural --n "$N" --seed 7 --warehouse "$WAREHOUSE"
fi

"$BIN/distillery" ladder --sizes "$SIZES" --strategies "${STRATEGIES:-random}" \
    --eval procedural-heldout --eval-n "$EVAL_N" --base-model "$BASE" "$LORA" \
    --max-steps "$MAX_STEPS" --epochs "$EPOCHS" --trainable-layers "$LAYERS" \
    --batch-size "$BATCH" --lr "$LR" --max-new-tokens "$MAX_NEW_TOKENS" \
    --unverified-rate "${UNVERIFIED_RATE:-0}" --threads "${THREADS:-0}" \
    --output-root "$OUTPUT_ROOT" \
    --warehouse "$WAREHOUSE"
