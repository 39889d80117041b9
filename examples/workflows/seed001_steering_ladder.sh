#!/usr/bin/env bash
# Seed 001: the steering-reliability ladder. Level 1 (smoke) runs the whole
# loop: a refusal direction from diff-means on harm_train vs benign_train,
# baseline vs alpha 1 on harm_train/harm_test/benign, refusal/helpfulness/
# coherence with Wilson CIs and Fisher tests, plots. Level 2 (layer test)
# compares layers 10/15/20 and picks the best cell by a stated rule
# (best.json); the seed's pandas snippet reads its summary.csv unchanged.
# Level 3 (alpha sweep, add vs ablate) runs on that layer (`layers: best`) and
# writes its own best.json, the seed's best (layer, alpha, intervention); at
# SIZE=ci it is only planned (--dry-run), and so it is when level 2 found no
# layer whose refusal rise is significant (best.json then names no best cell,
# only the leading one: a few prompts per cell rarely show a significant rise).
#
#   SIZE=ci    2 prompts per split at level 1, 1 at level 2   (measured 4 min wall on 2 CPU cores, 2026-12-06:
#              48 completions, each sweep loading the model)
#   SIZE=small 20 prompts per split, 5 at levels 2 and 3      (about 15 min on idle cores; estimated from the
#              layer_test config's measured rate: 360 completions)    <- default
#   SIZE=full  the configs' own sizes; levels 2-4 take hours on a CPU
set -euo pipefail
SIZE=${SIZE:-small}
OUT=${OUT:-runs/seed001}
HERE=$(cd "$(dirname "$0")/.." && pwd)
SAETOOL=${SAETOOL:-saetool}
PYTHON=${PYTHON:-python3}
case "$SIZE" in
  ci) N=(--max-prompts 2); N2=(--max-prompts 1); LEVEL3=(--dry-run) ;;
  small) N=(--max-prompts 20); N2=(--max-prompts 5); LEVEL3=(--overwrite) ;;
  full) N=(); N2=(); LEVEL3=(--overwrite) ;;
  *) echo "SIZE must be ci, small or full" >&2; exit 2 ;;
esac

$SAETOOL sweep "$HERE/configs/smoke.yaml" --output-dir "$OUT" ${N[@]+"${N[@]}"} --overwrite --json > "$OUT.summary.json"
# level 2: which layer? best.json records the decision ("pick best layer for Level 3")
$SAETOOL sweep "$HERE/configs/layer_test.yaml" --output-dir "$OUT" ${N2[@]+"${N2[@]}"} --overwrite > /dev/null
$PYTHON - "$OUT/layer_comparison/summary.csv" <<'PY' >&2
import sys

import pandas as pd

summary = pd.read_csv(sys.argv[1])  # seed 001's "After Layer Test" snippet, unchanged but for the alpha
best = summary[(summary['split'] == 'harm_test') & (summary['alpha'] == 1)].sort_values('is_refusal_mean', ascending=False)
print("Best layer:")
print(best[['layer', 'is_refusal_mean', 'is_helpful_mean']].head(1))
PY
# level 3 reads that layer (layers: best, best_from: layer_comparison) and picks the best
# (layer, alpha, intervention) into alpha_sweep/best.json; without a significant layer it is only planned
if ! $PYTHON -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["best"] is None)' "$OUT/layer_comparison/best.json"; then
  echo "level 2 found no layer whose refusal rise is significant (see $OUT/layer_comparison/best.json); level 3 is only planned" >&2
  LEVEL3=(--dry-run)
fi
$SAETOOL sweep "$HERE/configs/alpha_sweep.yaml" --output-dir "$OUT" ${N2[@]+"${N2[@]}"} ${LEVEL3[@]+"${LEVEL3[@]}"} > /dev/null
echo "summary.csv, best.json and plots in $OUT/smoke_test, $OUT/layer_comparison and $OUT/alpha_sweep (level 3 only planned at SIZE=ci or without a significant layer)" >&2
