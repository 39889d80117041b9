#!/usr/bin/env bash
# Seed 003: feature pathways. SAEs at two layers; features that separate
# harmful from benign prompts by Cohen's d (select); steering with the top
# one, beside a random direction of the same norm (the control); an audit that the artifacts join up; which upstream features drive the
# selected ones, validated by patching (pathways); and which tokens the
# steering made more or less frequent (tokens).
#
#   SIZE=ci    tiny SAEs, 2 texts          (about 1 min on 2 idle CPU cores; 65 s measured)
#   SIZE=small 8,192 tokens per layer      (about 2 min; 1 min 52 s measured)    <- default
#   SIZE=full  bigger SAEs and more texts  (an hour or more on a CPU)
set -euo pipefail
SIZE=${SIZE:-small}
OUT=${OUT:-runs/seed003}
SAETOOL=${SAETOOL:-saetool}
PYTHON=${PYTHON:-python3}
PROMPTS=$(cd "$(dirname "$0")/../prompts" && pwd)
case "$SIZE" in
  ci) TOKENS=2048; DSAE=512; STEPS=30; TEXTS=2; PROMPTS_N=2; NEW=6 ;;
  small) TOKENS=8192; DSAE=2304; STEPS=200; TEXTS=16; PROMPTS_N=10; NEW=24 ;;
  full) TOKENS=200000; DSAE=4608; STEPS=2000; TEXTS=128; PROMPTS_N=50; NEW=48 ;;
  *) echo "SIZE must be ci, small or full" >&2; exit 2 ;;
esac
mkdir -p "$OUT"

# SAEs at layers 6 and 12 of the embedded model (ordinary text)
$SAETOOL extract --layers 6,12 --num-tokens "$TOKENS" -o "$OUT/acts.h5" --overwrite > /dev/null
for L in 6 12; do
  $SAETOOL train "$OUT/acts.h5" --hook "blocks.$L.hook_resid_post" --arch topk --d-sae "$DSAE" --k 16 --batch-size 256 --steps "$STEPS" --target-l0 8-32 -o "$OUT/sae-L$L.h5" --overwrite > /dev/null
done

# step 1: features that separate harmful from benign prompts, one sequence per prompt
# (--per-line: padded, # comment lines skipped), Cohen's d over prompts of each prompt's
# largest activation (--per sequence-max: a per-prompt mean would dilute a feature that fires
# once by the prompt's length). The benign side is benign_matched.txt: each line the harmful
# line's ordinary counterpart, same opening and form, within one token of its length, so that
# length and phrasing do not separate the sets (against benign_train.txt, 8.2 tokens to 13.5,
# they did: see docs/tutorial.md). The two files pair line by line, so select ranks by the
# paired d of the per-pair differences (--pairing auto) and flips the pairs' signs for its chance level
$SAETOOL extract --corpus "files:$PROMPTS/harm_train.txt" --per-line --layers 6,12 --context-size 32 --num-tokens 4096 -o "$OUT/harm.h5" --overwrite > /dev/null
$SAETOOL extract --corpus "files:$PROMPTS/benign_matched.txt" --per-line --layers 6,12 --context-size 32 --num-tokens 4096 -o "$OUT/benign.h5" --overwrite > /dev/null
$SAETOOL select "$OUT/harm.h5" "$OUT/benign.h5" --per sequence-max --sae "$OUT/sae-L6.h5" --sae "$OUT/sae-L12.h5" --top 5 --export "$OUT/selection.json" -o "$OUT/selection.h5" --overwrite > /dev/null
# the strongest layer-12 feature more active on harmful prompts (d > 0; paired d when ranked by it) steers, so that adding it
# pushes towards "harmful" (a feature with d < 0 would push the other way); the strongest of any sign without one
TOP=$($PYTHON -c "import json,sys; rows=[r for r in json.load(open(sys.argv[1]))['rows'] if r['layer']==12]; print(next((r['feature'] for r in rows if (r.get('d_paired', r['d']) or 0) > 0), rows[0]['feature']))" "$OUT/selection.json")

# steer with it at half the residual stream's mean norm (--scale relative: a unit-norm push of
# a fixed size such as 8 is a few percent of a norm of about 140 here, too weak to change a
# completion; vector from-sae records the SAE and feature), then
# check that everything joins up, selected features to the steered one included (step 0)
grep -v '^#' "$PROMPTS/harm_test.txt" | head -n "$PROMPTS_N" > "$OUT/prompts.txt"
$SAETOOL vector from-sae "$OUT/sae-L12.h5" --feature "$TOP" -o "$OUT/vector.h5" --overwrite > /dev/null
$SAETOOL steer "$OUT/vector.h5" --prompts "$OUT/prompts.txt" --scale relative --alpha 0.5 --max-new-tokens "$NEW" -o "$OUT/steer.h5" --overwrite > /dev/null
# the control: a random direction of the same norm at the same hook, steered on the same prompts with
# the same settings; an effect it shows too comes from the push's size, not from the feature
$SAETOOL vector random --like "$OUT/vector.h5" --seed 0 -o "$OUT/vector-random.h5" --overwrite > /dev/null
$SAETOOL steer "$OUT/vector-random.h5" --prompts "$OUT/prompts.txt" --scale relative --alpha 0.5 --max-new-tokens "$NEW" -o "$OUT/steer-random.h5" --overwrite > /dev/null
$SAETOOL audit "$OUT/selection.h5" "$OUT/sae-L6.h5" "$OUT/sae-L12.h5" "$OUT/steer.h5" -o "$OUT/audit.json" --overwrite > /dev/null

# steps 2-3: upstream features driving the selected features, validated by patching
# (the selected layer-6 features have no SAE upstream: pathways skips and counts them)
$SAETOOL pathways --sae "$OUT/sae-L6.h5" --sae "$OUT/sae-L12.h5" --selection "$OUT/selection.h5" --texts "$PROMPTS/harm_test.txt" -n "$TEXTS" --top-k 5 -o "$OUT/pathways.h5" --export "$OUT/pathways.json" --overwrite > /dev/null

# step 4: tokens the steering made more or less frequent; --a steered --b baseline gives the
# seed's sign (log-odds > 0: more frequent in the steered text)
$SAETOOL tokens --completions "$OUT/steer.h5" --a steered --b baseline --min-count 2 --export "$OUT/tokens.csv" -o "$OUT/tokens.h5" --overwrite > /dev/null
echo "results in $OUT: selection.json, audit.json, pathways.json, tokens.csv; steer.h5 beside steer-random.h5 (a random direction, the control)" >&2
