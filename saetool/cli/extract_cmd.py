"""``saetool extract``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from saetool.cli.config_options import Group, from_config
from saetool.cli.options import OUTPUT, OVERWRITE, RESUME, TRUST_REMOTE_CODE
from saetool.console import log
from saetool.extract.config import ExtractConfig

# Deferred imports: loaded by `saetool --help`; the extract API (torch, h5py), artifact helpers and the distributed rank
# load when the command runs.

EXTRACT_OPTIONS = Group(
    ExtractConfig,
    flags={"prepend_bos": "--bos/--no-bos", "exclude_special": "--exclude-special/--include-special"},
    short={"model": "-m", "corpus": "-c", "layers": "-l", "num_tokens": "-n", "batch_size": "-b"},
    skip={"extra"},
)


@from_config(EXTRACT_OPTIONS, after={"device_map": "device", "backend": "device_map"})
def extract(
    output: Optional[Path] = OUTPUT,
    overwrite: bool = OVERWRITE,
    resume: bool = RESUME,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
    *,
    config: dict[str, Any],
) -> None:
    """Run a model over a corpus and store activations at hooks (an `activations` artifact).

    Example:

        saetool extract --model smollm2-135m --layers 15 --num-tokens 4096 -o acts.h5
        saetool extract --corpus files:harm_train.txt --per-line --layers 6,12 --context-size 64 -o harm.h5

    On several processes or machines: `torchrun --nproc-per-node 4 -m saetool extract ...`
    (see docs/scaling.md).
    """
    from saetool.artifacts.manifest import emit_manifest
    from saetool.extract.api import KIND, extract_activations

    path = extract_activations(ExtractConfig(**config), output, overwrite=overwrite, resume=resume)
    from saetool.distributed import rank_info

    if not rank_info().is_main:  # under torchrun only rank 0 reports (it wrote OUTPUT)
        return
    from saetool.artifacts.activations import ActivationsFile

    with ActivationsFile(path) as acts:
        log(f"[green]wrote[/green] {path}: {acts.n_tokens} tokens x {len(acts.hooks)} hook(s) ({', '.join(acts.hooks)})")
        emit_manifest(path, KIND, hooks=acts.hooks, n_tokens=acts.n_tokens, model=acts.model)
