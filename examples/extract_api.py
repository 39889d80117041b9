"""Notebook-style use of saetool's Python API; mirrors

    saetool extract --model smollm2-135m --layers 10,15 --num-tokens 2048 -o runs/example-acts.h5

and then reads the artifact back the way a later stage would.
"""

from __future__ import annotations

import argparse

from saetool.artifacts.activations import ActivationsFile
from saetool.extract import ExtractConfig, extract_activations
from saetool.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-tokens", type=int, default=2048)
    parser.add_argument("--output", default="runs/example-acts.h5")
    args = parser.parse_args()

    model = load_model("smollm2-135m")  # converted once into the cache, then fast
    config = ExtractConfig(model="smollm2-135m", layers="10,15", num_tokens=args.num_tokens, context_size=128)
    path = extract_activations(config, args.output, overwrite=True, model=model)

    with ActivationsFile(path) as acts:
        hook = acts.hooks[-1]
        x = acts.read(hook)
        print(f"{path}: {acts.n_tokens} tokens, hooks {acts.hooks}")
        print(f"{hook}: mean norm {x.norm(dim=-1).mean():.2f}, d = {acts.d(hook)}")
        first = acts.sequences()[0]
        print("first window:", repr(model.tokenizer.decode(first[:24])))


if __name__ == "__main__":
    main()
