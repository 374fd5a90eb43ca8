#!/usr/bin/env bash
# Data-size ladder with a real small model:
#
#   BASE_MODEL=Qwen/Qwen2.5-0.5B-Instruct bench/gpu_ladder.sh   # GPU: full fine-tune, bf16
#   BASE_MODEL=smollm2-135m bench/gpu_ladder.sh                  # GPU as above; CPU: LoRA
#
# With no GPU and no BASE_MODEL, the same ladder runs with the offline tiny student on CPU
# with small sizes (that is how the test suite runs this script). With no GPU and a
# BASE_MODEL, a CPU-sized LoRA ladder (one 200-example rung, all layers). Every knob is
# an environment variable; the defaults depend on the mode.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
export TRANSFORMERS_OFFLINE=${TRANSFORMERS_OFFLINE:-1}
export PREFECT_SERVER_ANALYTICS_ENABLED=false

# The defaults of each mode, side by side; a variable already set in the environment wins.
profile() {
    SIZES=${SIZES:-$1} MAX_STEPS=${MAX_STEPS:-$2} BATCH=${BATCH:-$3} EVAL_N=${EVAL_N:-$4}
    N=${N:-$5} LORA=${LORA:-$6} LR=${LR:-$7} EPOCHS=${EPOCHS:-$8} LAYERS=${LAYERS:-$9}
    THREADS=${THREADS:-${10}}
}
HAS_GPU=$("$BIN/python" -c "import torch; print(int(torch.cuda.is_available()))")
if [[ "$HAS_GPU" == 1 && -n "${BASE_MODEL:-}" ]]; then
    MODE=gpu BASE=$BASE_MODEL
    #       sizes          steps batch eval_n n    lora      lr   epochs layers threads
    profile 250,1000,4000  300   16    500    6000 --no-lora 2e-5 3      0      0
elif [[ -n "${BASE_MODEL:-}" ]]; then
    MODE=cpu BASE=$BASE_MODEL
    # All layers, both cores: LoRA on the top 8 layers only never got off the floor here.
    profile 200            0     8     100    600  --lora    0    2      0      0
else
    MODE=cpu BASE=tiny
    profile 100,400        60    8     50     600  --no-lora 1e-3 1      0      0
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
    --unverified-rate "${UNVERIFIED_RATE:-0}" --threads "$THREADS" \
    --output-root "$OUTPUT_ROOT" \
    --warehouse "$WAREHOUSE"
