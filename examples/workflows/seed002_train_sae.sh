#!/usr/bin/env bash
# Seed 002: SAE training. Extract residual-stream activations of the embedded
# model at one layer, train a TopK and a JumpReLU SAE on them (checklist
# printed at the end of each), evaluate both on held-out tokens with the model
# spliced, and export the TopK SAE in SAELens format.
#
#   SIZE=ci    2,048 tokens               (about 40 s on 2 CPU cores)
#   SIZE=small 32,768 tokens, 8 x d_in    (about 2 min)    <- default
#   SIZE=full  1M tokens                  (hours on a CPU; minutes on a GPU: add DEVICE=cuda)
set -euo pipefail
SIZE=${SIZE:-small}
OUT=${OUT:-runs/seed002}
DEVICE=${DEVICE:-cpu}
SAETOOL=${SAETOOL:-saetool}
case "$SIZE" in
  ci) TOKENS=2048; DSAE=1152; BATCH=256; EVAL=128 ;;
  small) TOKENS=32768; DSAE=4608; BATCH=1024; EVAL=2048 ;;
  full) TOKENS=1000000; DSAE=4608; BATCH=4096; EVAL=16384 ;;
  *) echo "SIZE must be ci, small or full" >&2; exit 2 ;;
esac
mkdir -p "$OUT"

$SAETOOL extract --layers 15 --num-tokens "$TOKENS" --device "$DEVICE" -o "$OUT/acts.h5" --overwrite > /dev/null
# held-out text: the corpus after the windows the SAEs train on
$SAETOOL extract --layers 15 --skip-tokens "$TOKENS" --num-tokens "$EVAL" --device "$DEVICE" -o "$OUT/heldout.h5" --overwrite > /dev/null
$SAETOOL train "$OUT/acts.h5" --arch topk --d-sae "$DSAE" --k 32 --batch-size "$BATCH" --target-l0 16-64 --device "$DEVICE" -o "$OUT/topk.h5" --overwrite > /dev/null
$SAETOOL train "$OUT/acts.h5" --arch jumprelu --d-sae "$DSAE" --batch-size "$BATCH" --target-l0 5-200 --device "$DEVICE" -o "$OUT/jumprelu.h5" --overwrite > /dev/null
for sae in topk jumprelu; do
  $SAETOOL evaluate "$OUT/$sae.h5" "$OUT/heldout.h5" --num-tokens "$EVAL" --json > "$OUT/$sae.eval.json"
done
$SAETOOL export "$OUT/topk.h5" --format saelens -o "$OUT/topk-saelens" --overwrite > /dev/null
echo "SAEs in $OUT (topk.h5, jumprelu.h5, topk-saelens/), evaluations in $OUT/*.eval.json" >&2
