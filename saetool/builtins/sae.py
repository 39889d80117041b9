"""Built-in SAE architectures and the ``train`` command."""

from __future__ import annotations

from saetool.hookspecs import hookimpl


@hookimpl
def register_sae_architectures(register):
    from saetool.train.architectures import BUILTIN_ARCHITECTURES

    for arch in BUILTIN_ARCHITECTURES:
        register(arch)


@hookimpl
def register_commands(register):
    from saetool.cli import train_cmd

    register(train_cmd.train, name="train")


@hookimpl
def load_sae(path, device):
    """A training checkpoint folder (``OUT.h5.checkpoints/best`` etc.) loads as the SAE it holds."""
    from pathlib import Path

    from saetool.train.checkpoint import FORMAT, META, TENSORS

    p = Path(path)
    if not (p.is_dir() and (p / META).is_file() and (p / TENSORS).is_file()):
        return None
    try:
        import json

        if json.loads((p / META).read_text()).get("format") != FORMAT:
            return None
    except (OSError, ValueError):
        return None
    from saetool.train.trainer import sae_from_checkpoint

    return sae_from_checkpoint(p, device)
