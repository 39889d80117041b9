"""Notebook-style tour of saetool's Python API; each cell mirrors one CLI stage:

    saetool extract --layers 15 -n 4096 -o runs/api/acts.h5
    saetool train runs/api/acts.h5 --arch topk --d-sae 1152 --k 32 -o runs/api/sae.h5
    saetool interpret runs/api/acts.h5 --sae runs/api/sae.h5 --top 20 --report runs/api/report.md
    saetool evaluate runs/api/sae.h5 runs/api/acts.h5
    saetool steer runs/api/sae.h5 --feature F --prompts prompts.txt --alpha 8

Run it as a script (``python examples/pipeline_api.py --num-tokens 4096``, about
2 minutes on 2 CPU cores) or cell by cell (``# %%``) in Jupyter/VS Code. Every
call writes the same artifact the command would, so the CLI can pick up from
here (``saetool inspect runs/api/sae.h5``).
"""

# %% settings
from __future__ import annotations

import argparse
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--num-tokens", type=int, default=4096)
parser.add_argument("--steps", type=int, default=150)
parser.add_argument("--out", type=Path, default=Path("runs/api"))
args, _ = parser.parse_known_args()  # tolerate a notebook kernel's own arguments
OUT = args.out
OUT.mkdir(parents=True, exist_ok=True)

# %% load the embedded model once and reuse it in every stage
from saetool.models import load_model

model = load_model("smollm2-135m")

# %% extract: residual stream after layer 15 over BBC News
from saetool.extract import ExtractConfig, extract_activations

acts = extract_activations(ExtractConfig(layers="15", num_tokens=args.num_tokens, context_size=128), OUT / "acts.h5", overwrite=True, model=model, progress=False)

# %% train: a TopK SAE; the result holds the inference SAE and the checklist
from saetool.train import TrainConfig, train_sae

trained = train_sae(TrainConfig(arch="topk", d_sae=1152, k=32, batch_size=512, steps=args.steps), [acts], OUT / "sae.h5", overwrite=True, progress=False)
for item in trained.checklist:
    print(f"{item.name:<32} {item.value!s:>12}  {'pass' if item.passed else 'FAIL' if item.passed is False else ''}")

# %% interpret: statistics, examples and token labels of 20 features sampled across density bands
from saetool.interpret.api import InterpretConfig, interpret
from saetool.interpret.report import feature_report_text, write_report

features = interpret(InterpretConfig(top=20, examples=8), acts, trained.path, OUT / "features.h5", overwrite=True, progress=False)
live = [r for r in features.records if not r.dead]
write_report(features.records, OUT / "report.md", title="pipeline_api.py", meta={"sae": str(trained.path)})
print(feature_report_text(live[0], examples=3))

# %% evaluate: reconstruction and sparsity on the activations, CE loss recovered with the model
from saetool.evaluate.api import EvalConfig, evaluate_sae

evaluation = evaluate_sae(trained.path, acts, EvalConfig(num_tokens=1024, batch_size=4), model=model)
for name in ("explained_variance", "l0", "dead_fraction", "ce_loss_recovered"):
    print(f"{name:<20} {evaluation.metrics.get(name)}")

# %% steer: add the most active feature's decoder direction while generating
from saetool.steer.api import SteerConfig, resolve_source, run_steer

prompts = OUT / "prompts.txt"
prompts.write_text("Tell me about the weather today.\nWhat is a good name for a cat?\n")
source = resolve_source(sae=trained.path, feature=live[0].index)
steered = run_steer(SteerConfig(prompts=str(prompts), alpha=8.0, metrics=["coherence"]), source, OUT / "steer.h5", overwrite=True, model=model, progress=False)
print(steered.path)
