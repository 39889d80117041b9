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
# small for any rise to be significant. The chosen cell is then confirmed on
# harmful prompts no level read (harm_confirm.txt) and against a random
# direction of its norm (CONFIRM=leading: when no cell was chosen, the
# leading one, to see whether a lead that was not significant holds on
# fresh prompts). SIZE=full adds level 4 (full.yaml, every prompt) beside
# levels 2 and 3.
#
#   SIZE=ci    2 prompts per split at level 1, 1 at level 2   (measured 4 min wall on 2 CPU cores, 2026-12-06:
#              48 completions, each sweep loading the model)
#   SIZE=small 20 prompts per split at every level            (measured 7 min 49 s on 2 idle CPU cores, 2026-12-07:
#              120 + 420 + 540 completions, 40 for the confirmation and 120 for the random control)    <- default
#   SIZE=full  the configs' own sizes; levels 2-4 take hours on a CPU
set -euo pipefail
SIZE=${SIZE:-small}
OUT=${OUT:-runs/seed001}
HERE=$(cd "$(dirname "$0")/.." && pwd)
SAETOOL=${SAETOOL:-saetool}
PYTHON=${PYTHON:-python3}
CONFIRM=${CONFIRM:-best}  # best: confirm best.json's chosen cell; leading: its leading cell when none was chosen
case "$CONFIRM" in best|leading) ;; *) echo "CONFIRM must be best or leading" >&2; exit 2 ;; esac
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
# the control and the confirmation: the chosen vector on harmful prompts no level read (harm_confirm),
# prompt by prompt against alpha 0, and a random direction of its norm at its layer steered the same
# way on harm_test, harm_confirm and benign (an effect the random direction shows too is the push's
# size, not the direction). harm_test chose the cell, so the chosen vector's rate there is optimistic;
# harm_confirm is the unbiased test.
BEST=$OUT/alpha_sweep/best.json
[ "${LEVEL3[0]}" = --dry-run ] && BEST=$OUT/layer_comparison/best.json
CELL=$($PYTHON -c '
import json, sys
data = json.load(open(sys.argv[1]))
b = data["best"] if data["best"] is not None or sys.argv[2] == "best" else data.get("leading")
print("" if b is None else " ".join(str(b[k]) for k in ("layer", "alpha", "intervention")) + (" chosen" if data["best"] is not None else " leading"))' "$BEST" "$CONFIRM")
if [ -n "$CELL" ]; then
  read -r LAYER ALPHA IV KIND <<< "$CELL"
  RUN=$(dirname "$BEST")
  VECTOR=$(printf '%s/vectors/L%02d.h5' "$RUN" "$LAYER")
  $SAETOOL vector random --like "$VECTOR" --seed 0 -o "$OUT/random-L$LAYER.h5" --overwrite > /dev/null
  # the configs as JSON (valid YAML), so that no path needs quoting by hand
  $PYTHON - "$OUT" "$HERE/prompts" "$VECTOR" "$OUT/random-L$LAYER.h5" "$LAYER" "$ALPHA" "$IV" "$KIND" <<'PY'
import json
import sys

out, prompts, vector, random_vector, layer, alpha, iv, kind = sys.argv[1:]
cell = f"layer {layer}, {iv}, alpha {alpha}"
common = {
    "model": "smollm2-135m", "chat": True, "layers": [int(layer)], "alphas": [0, float(alpha)], "interventions": [iv], "scale": "raw",
    "generation": {"max_new_tokens": 32, "batch_size": 32}, "metrics": ["refusal", "refusal_strict", "helpfulness", "coherence"],
    "statistics": {"test": "paired"},
}
files = {name: f"{prompts}/{name}.txt" for name in ("harm_test", "harm_confirm", "benign")}
configs = {
    "confirm": {"description": f"the {kind} cell ({cell}) on harmful prompts no level read", "prompts": {"harm_confirm": files["harm_confirm"]},
                "splits": ["harm_confirm"], "vector": {"method": "file", "file": vector}},
    "random_control": {"description": f"the {kind} cell ({cell}) with a random direction of the same norm", "prompts": files,
                       "splits": list(files), "vector": {"method": "file", "file": random_vector}},
}
for name, config in configs.items():
    open(f"{out}/{name}.yaml", "w").write(json.dumps({"name": name, **config, **common}, indent=2) + "\n")
PY
  $SAETOOL sweep "$OUT/confirm.yaml" --output-dir "$OUT" ${N2[@]+"${N2[@]}"} --overwrite > /dev/null
  $SAETOOL sweep "$OUT/random_control.yaml" --output-dir "$OUT" ${N2[@]+"${N2[@]}"} --overwrite > /dev/null
  $PYTHON - "$RUN" "$OUT/confirm" "$OUT/random_control" "$LAYER" "$ALPHA" "$IV" "$KIND" <<'PY' >&2
import sys
from pathlib import Path

import pandas as pd

from saetool.steer.completions import read_completions
from saetool.steer.stats import mcnemar_exact_p

run, confirm, control = (Path(p) for p in sys.argv[1:4])
layer, alpha, iv, kind = int(sys.argv[4]), float(sys.argv[5]), sys.argv[6], sys.argv[7]
METRICS = (("refusal", "refusal"), ("refusal_strict", "refusal without apologies that then offer help"))


def cell(path: Path, split: str):
    return read_completions(path / f"cells/{split}/L{layer:02d}_{iv}_a{alpha:g}.h5")


print(f"the {kind} cell (layer {layer}, {iv}, alpha {alpha:g})" + (" (CONFIRM=leading; not significant where it led):" if kind == "leading" else ":"))
t = pd.read_csv(confirm / "summary.csv")
for r in t[(t["split"] == "harm_confirm") & (t["alpha"] == alpha)].itertuples():
    base = t[(t["split"] == "harm_confirm") & (t["alpha"] == 0)].iloc[0]
    print(f"  harm_confirm (prompts no level read): refusal {base.refusal_k}/{base.n} at alpha 0 -> {r.refusal_k}/{r.n} "
          f"(exact McNemar p {r.refusal_p:.2g}); refusal_strict {base.refusal_strict_k}/{base.n} -> {r.refusal_strict_k}/{r.n} (p {r.refusal_strict_p:.2g})")
for name, path in (("steering vector", run), ("random direction", control)):
    t = pd.read_csv(path / "summary.csv")
    rows = t[(t["layer"] == layer) & (t["alpha"] == alpha) & (t["intervention"] == iv) & t["split"].isin(["harm_test", "benign"])]
    print(f"  {name}: " + "; ".join(f"{r.split} refusal {r.refusal_k}/{r.n}, coherence {r.coherence_mean:.2f}" for r in rows.itertuples()))
print("  steering vector against the random direction, prompt by prompt (exact McNemar):")
for split, chosen_run in (("harm_test", run), ("harm_confirm", confirm)):
    chosen, random = cell(chosen_run, split), cell(control, split)
    assert list(chosen.prompts) == list(random.prompts)  # the same prompts, in order: a paired test
    for metric, what in METRICS:
        if metric not in chosen.metrics["steered"] or metric not in random.metrics["steered"]:
            continue  # a level-2/3 run from before the config scored it
        a, b = chosen.metrics["steered"][metric], random.metrics["steered"][metric]
        print(f"    {split} {what}: {int(sum(a))}/{len(a)} against {int(sum(b))}/{len(b)}, p {mcnemar_exact_p(b, a):.2g}")
print(f"  (harm_test {'chose' if kind == 'chosen' else 'led to'} the cell, so the vector's rate there is optimistic; harm_confirm is the unbiased test)")
PY
else
  rm -rf "$OUT/confirm" "$OUT/random_control" "$OUT/confirm.yaml" "$OUT/random_control.yaml"  # an earlier run's, about another cell
  if [ "$CONFIRM" = leading ]; then
    echo "no best or leading cell in $BEST ($($PYTHON -c 'import json, sys; print(json.load(open(sys.argv[1])).get("reason", "no reason recorded"))' "$BEST")): nothing to confirm" >&2
  else
    echo "no best cell in $BEST: nothing to confirm on harm_confirm or against a random direction (CONFIRM=leading confirms the leading cell)" >&2
  fi
fi
if [ "$SIZE" = full ]; then  # level 4: the whole grid on every prompt, to confirm levels 2-3
  $SAETOOL sweep "$HERE/configs/full.yaml" --output-dir "$OUT" --overwrite > /dev/null
fi
echo "summary.csv, best.json and plots in $OUT/smoke_test, $OUT/layer_comparison, $OUT/alpha_sweep$([ "$SIZE" = full ] && echo ", $OUT/full"), and the confirmation and random control in $OUT/confirm and $OUT/random_control when a best cell was found (or, with CONFIRM=leading, a leading one) (level 3 only planned at SIZE=ci or without a significant layer)" >&2
