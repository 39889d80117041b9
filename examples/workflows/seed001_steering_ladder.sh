#!/usr/bin/env bash
# Seed 001: the steering-reliability ladder. Level 1 (smoke) runs the whole
# loop: a refusal direction from diff-means on harm_train vs benign_train,
# baseline vs alpha 1 on harm_train/harm_test/benign, refusal/helpfulness/
# coherence with Wilson CIs and Fisher tests, plots. Then the layer test
# (level 2) as a dry run: the plan and its cost, without generating.
#
#   SIZE=ci    2 prompts per split   (about 1 min on 2 CPU cores)
#   SIZE=small 20 prompts per split  (about 3 min)    <- default
#   SIZE=full  the configs' own sizes; levels 2-4 take hours on a CPU
set -euo pipefail
SIZE=${SIZE:-small}
OUT=${OUT:-runs/seed001}
HERE=$(cd "$(dirname "$0")/.." && pwd)
SAETOOL=${SAETOOL:-saetool}
case "$SIZE" in
  ci) N=(--max-prompts 2) ;;
  small) N=(--max-prompts 20) ;;
  full) N=() ;;
  *) echo "SIZE must be ci, small or full" >&2; exit 2 ;;
esac

$SAETOOL sweep "$HERE/configs/smoke.yaml" --output-dir "$OUT" "${N[@]}" --overwrite --json > "$OUT.summary.json"
$SAETOOL sweep "$HERE/configs/layer_test.yaml" --output-dir "$OUT" --dry-run
echo "summary: $OUT/smoke_test/summary.csv, plots in $OUT/smoke_test/" >&2
