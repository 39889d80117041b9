#!/usr/bin/env bash
# Seed 000: the small-scale testing strategy, end to end on the embedded model.
#   phase 1  an SAE (pass SAE=path to a pretrained SAELens/sparsify folder, or
#            one is trained here), checked against the model; emotion steering
#            with seed 000's positive/negative words on 10 openings
#   phase 2  negative->positive transition texts generated from base prompts,
#            the transition token labeled, activations there through the SAE
#   phase 3  the SAE's top features interpreted (report + HTML browser)
#   phase 5  the go/no-go check: SCALE UP or FIX ISSUES FIRST (exit 1 is a verdict here)
#
#   SIZE=ci    2,048 tokens, 2 prompts, 2 transitions   (about 1 min on 2 CPU cores)
#   SIZE=small 16,384 tokens, 10 prompts, 10            (about 6 min)    <- default
#   SIZE=full  131,072 tokens, 20 prompts, 50           (about an hour on a CPU)
set -euo pipefail
SIZE=${SIZE:-small}
OUT=${OUT:-runs/seed000}
SAETOOL=${SAETOOL:-saetool}
PROMPTS=$(cd "$(dirname "$0")/../prompts" && pwd)
case "$SIZE" in
  ci) TOKENS=2048; STEPS=40; N=2; NEW=8 ;;
  small) TOKENS=16384; STEPS=300; N=10; NEW=24 ;;
  full) TOKENS=131072; STEPS=2000; N=50; NEW=40 ;;
  *) echo "SIZE must be ci, small or full" >&2; exit 2 ;;
esac
mkdir -p "$OUT"

# phase 1.1: an SAE for layer 15, and whether it fits the model
$SAETOOL extract --layers 15 --num-tokens "$TOKENS" -o "$OUT/acts.h5" --overwrite > /dev/null
if [ -z "${SAE:-}" ]; then
  $SAETOOL train "$OUT/acts.h5" --arch topk --d-sae 2304 --k 32 --batch-size 512 --steps "$STEPS" --target-l0 16-64 -o "$OUT/sae.h5" --overwrite > /dev/null
  SAE="$OUT/sae.h5"
fi

# phase 1.2: mini steering test (seed 000's words, completion-style openings)
grep -v '^#' "$PROMPTS/emotion.txt" | head -n "$N" > "$OUT/openings.txt"
$SAETOOL vector words --layer 15 -o "$OUT/emotion.h5" --overwrite > /dev/null
$SAETOOL steer "$OUT/emotion.h5" --no-chat --alpha 8 --prompts "$OUT/openings.txt" --max-new-tokens "$NEW" --metrics sentiment,coherence -o "$OUT/steer.h5" --overwrite > /dev/null

# phase 2: transitions generated from the openings, labeled, through the SAE
$SAETOOL transitions --sae "$SAE" --prompts "$OUT/openings.txt" --bridge " However," --max-new-tokens "$NEW" -o "$OUT/transitions.h5" --overwrite > /dev/null

# phase 3: what the SAE's features respond to (20 sampled across density bands)
$SAETOOL interpret "$OUT/acts.h5" --sae "$SAE" --top 20 --report "$OUT/report.md" --html "$OUT/features.html" -o "$OUT/features.h5" --overwrite > /dev/null

# phase 5: go / no-go
set +e
$SAETOOL check "$SAE" "$OUT/acts.h5" --l0 16-64 --json > "$OUT/check.json"
verdict=$?
set -e
[ "$verdict" -le 1 ] || exit "$verdict"
echo "verdict: $([ "$verdict" = 0 ] && echo 'SCALE UP' || echo 'FIX ISSUES FIRST'); results in $OUT (check.json, report.md, features.html)" >&2
