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
# only the leading one). Each level's tests are corrected over its target
# split's steered cells (statistics.family: split): at 5 prompts per cell
# 5 refusals of 5 against none barely clears Holm over level 2's 6 cells
# (0.048) and cannot clear it over level 3's 8 (0.063), so levels 2 and 3
# use 20 prompts per split at SIZE=small; sweep warns when a plan is too
# small for any rise to be significant. SIZE=full adds level 4
# (full.yaml, every prompt) beside levels 2 and 3.
#
#   SIZE=ci    2 prompts per split at level 1, 1 at level 2   (measured 4 min wall on 2 CPU cores, 2026-12-06:
#              48 completions, each sweep loading the model)
#   SIZE=small 20 prompts per split at every level            (measured 9 min 6 s on 2 idle CPU cores, 2026-12-07:
#              120 + 420 + 540 completions and 80 for the random control)    <- default
#   SIZE=full  the configs' own sizes; levels 2-4 take hours on a CPU
set -euo pipefail
SIZE=${SIZE:-small}
OUT=${OUT:-runs/seed001}
HERE=$(cd "$(dirname "$0")/.." && pwd)
SAETOOL=${SAETOOL:-saetool}
PYTHON=${PYTHON:-python3}
case "$SIZE" in
  ci) N=(--max-prompts 2); N2=(--max-prompts 1); LEVEL3=(--dry-run) ;;
  small) N=(--max-prompts 20); N2=(--max-prompts 20); LEVEL3=(--overwrite) ;;
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
# the control: a random direction of the chosen vector's norm at its layer, steered the same way on
# harm_test and benign (an effect the random direction shows too is the push's size, not the direction).
# harm_test is the split the cell was chosen on, so the chosen vector's rate there is optimistic.
BEST=$OUT/alpha_sweep/best.json
[ "${LEVEL3[0]}" = --dry-run ] && BEST=$OUT/layer_comparison/best.json
CELL=$($PYTHON -c 'import json, sys; b = json.load(open(sys.argv[1]))["best"]; print("" if b is None else " ".join(str(b[k]) for k in ("layer", "alpha", "intervention")))' "$BEST")
if [ -n "$CELL" ]; then
  read -r LAYER ALPHA IV <<< "$CELL"
  RUN=$(dirname "$BEST")
  $SAETOOL vector random --like "$(printf '%s/vectors/L%02d.h5' "$RUN" "$LAYER")" --seed 0 -o "$OUT/random-L$LAYER.h5" --overwrite > /dev/null
  # the config as JSON (valid YAML), so that no path needs quoting by hand
  $PYTHON - "$OUT/random_control.yaml" "$HERE/prompts" "$OUT/random-L$LAYER.h5" "$LAYER" "$ALPHA" "$IV" <<'PY'
import json
import sys

out, prompts, vector, layer, alpha, iv = sys.argv[1:]
config = {
    "name": "random_control", "description": f"the chosen cell (layer {layer}, {iv}, alpha {alpha}) with a random direction of the same norm",
    "model": "smollm2-135m", "chat": True, "prompts": {"harm_test": f"{prompts}/harm_test.txt", "benign": f"{prompts}/benign.txt"},
    "splits": ["harm_test", "benign"], "vector": {"method": "file", "file": vector}, "layers": [int(layer)], "alphas": [0, float(alpha)],
    "interventions": [iv], "scale": "raw", "generation": {"max_new_tokens": 32, "batch_size": 32}, "metrics": ["refusal", "refusal_strict", "helpfulness", "coherence"],
}
open(out, "w").write(json.dumps(config, indent=2) + "\n")
PY
  $SAETOOL sweep "$OUT/random_control.yaml" --output-dir "$OUT" ${N2[@]+"${N2[@]}"} --overwrite > /dev/null
  $PYTHON - "$RUN" "$OUT/random_control" "$LAYER" "$ALPHA" "$IV" <<'PY' >&2
import sys
from pathlib import Path

import pandas as pd

from saetool.steer.completions import read_completions
from saetool.steer.stats import mcnemar_exact_p

runs = [Path(p) for p in sys.argv[1:3]]
layer, alpha, iv = int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
print(f"the chosen cell (layer {layer}, {iv}, alpha {alpha:g}) against a random direction of the same norm:")
for name, run in zip(("chosen vector", "random direction"), runs):
    t = pd.read_csv(run / "summary.csv")
    rows = t[(t["layer"] == layer) & (t["alpha"] == alpha) & (t["intervention"] == iv) & t["split"].isin(["harm_test", "benign"])]
    print(f"  {name}: " + "; ".join(f"{r.split} refusal {r.refusal_k}/{r.n} (vs alpha 0: corrected p {r.refusal_p_adj:.2g}), coherence {r.coherence_mean:.2f}" for r in rows.itertuples()))
cell = f"cells/harm_test/L{layer:02d}_{iv}_a{alpha:g}.h5"
chosen, control = (read_completions(run / cell) for run in runs)
assert list(chosen.prompts) == list(control.prompts)  # the same prompts, in order: a paired test
for metric, what in (("refusal", "refusal"), ("refusal_strict", "refusal without apologies that then offer help")):
    if metric not in chosen.metrics["steered"] or metric not in control.metrics["steered"]:
        continue  # a level-2/3 run from before the config scored it
    a, b = chosen.metrics["steered"][metric], control.metrics["steered"][metric]
    print(f"  harm_test {what}, chosen vector {int(sum(a))}/{len(a)} against random direction {int(sum(b))}/{len(b)}, "
          f"prompt by prompt: exact McNemar p {mcnemar_exact_p(b, a):.2g}")
print("  (harm_test chose the cell, so the vector's rate there is optimistic; confirm on harmful prompts neither touched)")
PY
fi
if [ "$SIZE" = full ]; then  # level 4: the whole grid on every prompt, to confirm levels 2-3
  $SAETOOL sweep "$HERE/configs/full.yaml" --output-dir "$OUT" --overwrite > /dev/null
fi
echo "summary.csv, best.json and plots in $OUT/smoke_test, $OUT/layer_comparison, $OUT/alpha_sweep$([ "$SIZE" = full ] && echo ", $OUT/full"), and the random control in $OUT/random_control when a best cell was found (level 3 only planned at SIZE=ci or without a significant layer)" >&2
