#!/usr/bin/env bash
# Seed 002, phase 3: the hypothesis tracking system. Extract every layer of the
# embedded model in one pass, train one SAE per layer in one pass (an sae-set),
# then follow features across layers: tracks with their continues, splits,
# merges, births and deaths (summary on stderr, CSV, flow plot, HTML view), and
# GhostTrack's text mode comparing the hypothesis tracks of true and false
# answers to the same 51 questions (paired by question, each scored on its
# answer tokens; paired t-test, Holm-adjusted).
#
#   SIZE=ci    1,024 tokens, 30 SAEs of 2 x d_in, 40 steps    (2 min on 2 CPU cores; a smoke test:
#              most of its SAEs miss the FVU target, track says so, and nearly every track spans one layer)
#   SIZE=small 16,384 tokens, 30 SAEs of 8 x d_in, 400 steps  (16 min on 2 idle CPU cores, 2026-12-07; 28 min on busier ones)   <- default
#   SIZE=full  262,144 tokens, 2,000 steps                     (hours on a CPU; add DEVICE=cuda)
set -euo pipefail
SIZE=${SIZE:-small}
OUT=${OUT:-runs/seed002_phase3}
DEVICE=${DEVICE:-cpu}
SAETOOL=${SAETOOL:-saetool}
HERE=$(cd "$(dirname "$0")/.." && pwd)
case "$SIZE" in
  ci) TOKENS=1024; DSAE=1152; STEPS=40; BATCH=256 ;;
  small) TOKENS=16384; DSAE=4608; STEPS=400; BATCH=512 ;;
  full) TOKENS=262144; DSAE=4608; STEPS=2000; BATCH=4096 ;;
  *) echo "SIZE must be ci, small or full" >&2; exit 2 ;;
esac
mkdir -p "$OUT"

# every layer -> one SAE per layer (sae-set) -> tracks across adjacent layers
$SAETOOL extract --layers all --num-tokens "$TOKENS" --device "$DEVICE" -o "$OUT/acts.h5" --overwrite \
  | $SAETOOL train --hooks all --arch topk --d-sae "$DSAE" --k 32 --steps "$STEPS" --batch-size "$BATCH" --device "$DEVICE" -o "$OUT/saes" --overwrite \
  | $SAETOOL track --csv "$OUT/tracks.csv" --plot "$OUT/flow.png" --html "$OUT/tracks.html" -o "$OUT/tracks.h5" --overwrite > "$OUT/tracks.json"

# text mode: hypothesis tracks per token, true vs false answers
$SAETOOL track "$OUT/saes" --compare "$HERE/prompts/truthful.txt" --compare "$HERE/prompts/hallucinated.txt" \
  --device "$DEVICE" --csv "$OUT/tokens.csv" -o "$OUT/compare.h5" --overwrite > "$OUT/compare.json"
echo "tracks in $OUT (tracks.h5, tracks.csv, flow.png, tracks.html), true vs false answers in $OUT/compare.h5" >&2
