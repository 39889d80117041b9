#!/usr/bin/env bash
# Seed 004: activation samples. Train with --collect-samples (per-feature top-k
# kept during training), export them in the seed's folder layout, then run the
# full interpretation over the activations (statistics, examples, labels with
# detection scores, report and browser) and use the analyzer commands:
# report, compare, similar, distribution.
#
#   SIZE=ci    4,096 tokens                  (about 1 min on 2 CPU cores)
#   SIZE=small 32,768 tokens, 4,608 features, 128 steps (about 2 min; measured 1 min 38 s on 2 idle cores)    <- default
#   SIZE=full  1M tokens                     (hours on a CPU)
set -euo pipefail
SIZE=${SIZE:-small}
OUT=${OUT:-runs/seed004}
SAETOOL=${SAETOOL:-saetool}
PYTHON=${PYTHON:-python3}
case "$SIZE" in
  ci) TOKENS=4096; DSAE=1152; BATCH=256; EVERY=4 ;;
  small) TOKENS=32768; DSAE=4608; BATCH=256; EVERY=8 ;;  # 128 steps: at 1,024 rows (32 steps) the SAE missed its checklist's FVU target
  full) TOKENS=1000000; DSAE=4608; BATCH=4096; EVERY=100 ;;
  *) echo "SIZE must be ci, small or full" >&2; exit 2 ;;
esac
mkdir -p "$OUT"

$SAETOOL extract --layers 15 --num-tokens "$TOKENS" -o "$OUT/acts.h5" --overwrite \
  | $SAETOOL train --arch topk --d-sae "$DSAE" --k 32 --batch-size "$BATCH" --target-l0 16-64 \
      --collect-samples --sample-every "$EVERY" --samples-per-feature 20 --sample-context 20 --sample-features 100 \
      -o "$OUT/sae.h5" --overwrite > /dev/null
$SAETOOL export "$OUT/sae.h5" --format samples -o "$OUT/samples" --overwrite > /dev/null
# the folder holds collection_summary.json, feature_XXXXX_samples.json and interpretability_report.md;
# the analyzer reads it directly (values are the final SAE's activations at the collected tokens)
# a typical sampled feature (the median by activation count), not the densest: dense ones are seldom monosemantic
SAMPLED=$($PYTHON -c "import json, sys; f = sorted(json.load(open(sys.argv[1]))['features'], key=lambda x: (-x['activation_count'], x['feature_idx'])); print(f[len(f) // 2]['feature_idx'])" "$OUT/samples/collection_summary.json")
$SAETOOL features report "$OUT/samples" --feature "$SAMPLED" --examples 3
$SAETOOL features distribution "$OUT/samples" "$SAMPLED" --png "$OUT/samples/feature_${SAMPLED}_distribution.png" > /dev/null

$SAETOOL interpret "$OUT/acts.h5" --sae "$OUT/sae.h5" --top 50 --examples 10 \
  --report "$OUT/interpretability_report.md" --html "$OUT/features.html" -o "$OUT/features.h5" --overwrite > /dev/null
# the two most frequently active features among those interpret stored (its --top 50, sampled across densities), read with the Python API
read -r FIRST SECOND < <($PYTHON -c "
import sys
from saetool.interpret.store import FeaturesFile
with FeaturesFile(sys.argv[1]) as f:
    count = f.stats()['count']
    print(*sorted(f.index.tolist(), key=lambda i: -count[i])[:2])" "$OUT/features.h5")
$SAETOOL features report "$OUT/features.h5" --feature "$FIRST"
$SAETOOL features similar "$OUT/features.h5" "$FIRST" --top 5
$SAETOOL features distribution "$OUT/features.h5" "$FIRST"
$SAETOOL features compare "$OUT/features.h5" "$FIRST" "$SECOND" --sae "$OUT/sae.h5"
echo "samples in $OUT/samples/, report in $OUT/interpretability_report.md, browser in $OUT/features.html" >&2
