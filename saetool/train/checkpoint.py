"""Training checkpoints: tensors in safetensors, everything else in JSON (no pickle).

A run writing ``OUT.h5`` keeps its checkpoints in ``OUT.h5.checkpoints/``::

    step_000200/  state.safetensors  state.json    every --checkpoint-every steps (last 3 kept)
    best/         ...                              lowest validation loss so far
    final/        ...                              the end of training, before finalisation

Each folder is written under a temporary name and renamed into place, so a
crash never leaves a half-written checkpoint behind.

The checkpoint reader is registered with the built-ins, which load for every
command: torch and the training modules are imported inside the functions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from saetool.artifacts.files import claim_temporary, create_new, fsync_path, refuse_link, write_errors_as_one_line
from saetool.devices import torch_dtype
from saetool.errors import SaetoolError
from saetool.locking import locked
from saetool.sae.config import SAEConfig
from saetool.sae.format_api import SAEReader
from saetool.sae.model import SAE
from saetool.train.architectures import get_architecture
from saetool.train.config import TrainConfig
from saetool.train.scaling import fold_scales

if TYPE_CHECKING:
    import torch


FORMAT = "saetool-train-checkpoint"
VERSION = 1
TENSORS = "state.safetensors"
META = "state.json"
KEEP_STEPS = 3
_STEP_DIR = re.compile(r"^step_(\d+)$")


def checkpoint_dir_for(output: str | Path) -> Path:
    p = Path(output)
    return p.with_name(p.name + ".checkpoints")


class CheckpointError(SaetoolError):
    """A checkpoint is missing, corrupt or not a saetool training checkpoint."""


class CheckpointDir:
    """The checkpoint folder of one training run."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def save(self, name: str, tensors: dict[str, "torch.Tensor"], meta: dict[str, Any]) -> Path:
        """Write (or replace) checkpoint ``name`` atomically."""
        self.check_not_linked()
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / name
        tmp = claim_temporary(self.root / f".{name}.tmp", what="checkpoint staging folder")
        with write_errors_as_one_line(self.root):
            try:
                tmp.mkdir()
                save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(tmp / TENSORS))
                fsync_path(tmp / TENSORS)
                with create_new(tmp / META) as fh:
                    fh.write(json.dumps({"format": FORMAT, "version": VERSION, **meta}, sort_keys=True))
                    fh.flush()
                    os.fsync(fh.fileno())
                if target.is_symlink():
                    target.unlink()
                if target.exists():
                    old = claim_temporary(self.root / f".{name}.old", what="checkpoint staging folder")
                    os.replace(target, old)
                    os.replace(tmp, target)
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    os.replace(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return target

    def check_not_linked(self) -> None:
        """Refuse a symbolic link where the checkpoint folder goes (saetool writes and deletes in it)."""
        refuse_link(self.root, what="checkpoint folder")

    def save_step(self, step: int, tensors: dict[str, "torch.Tensor"], meta: dict[str, Any]) -> Path:
        path = self.save(f"step_{step:06d}", tensors, meta)
        for old in self.step_dirs()[:-KEEP_STEPS]:
            shutil.rmtree(old, ignore_errors=True)
        return path

    def step_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        """The newest checkpoint (``final`` if there is one, else the highest step)."""
        final = self.root / "final"
        if final.is_dir():
            return final
        steps = self.step_dirs()
        return steps[-1] if steps else None

    def exists(self) -> bool:
        return self.latest() is not None

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def locked(self) -> "ContextManager[object]":
        """Hold ``ROOT.lock`` so a second run cannot write the same checkpoints."""
        self.check_not_linked()
        busy = lambda: CheckpointError(f"another saetool process is training into {self.root}", hint="wait for it to finish, or choose another --output")  # noqa: E731
        return locked(self.root.with_name(self.root.name + ".lock"), busy)


def load_meta(path: str | Path) -> dict[str, Any]:
    """The settings and state record of one checkpoint folder (no tensors), or a one-line :class:`CheckpointError`."""
    p = Path(path)
    meta_path, tensor_path = p / META, p / TENSORS
    if not meta_path.is_file() or not tensor_path.is_file():
        raise CheckpointError(f"{p} is not a saetool training checkpoint (no {META} / {TENSORS})", hint="delete the folder and run without --resume")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {p} is corrupt ({META} unreadable: {exc})", hint="delete the folder and run without --resume") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a saetool training checkpoint (foreign {META})", hint="delete the folder and run without --resume")
    if int(meta.get("version", 0)) > VERSION:
        raise CheckpointError(f"checkpoint {p} has version {meta.get('version')}, newer than this saetool reads ({VERSION})", hint="upgrade saetool")
    return meta


def load_checkpoint(path: str | Path) -> tuple[dict[str, "torch.Tensor"], dict[str, Any]]:
    """``(tensors, meta)`` of one checkpoint folder, or a one-line :class:`CheckpointError`."""
    p = Path(path)
    meta, tensor_path = load_meta(p), p / TENSORS
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {p} is corrupt ({TENSORS} unreadable: {' '.join(str(exc).split())[:120]})", hint="delete the folder and run without --resume") from None
    return tensors, meta


def sae_from_checkpoint(path: str | Path, device: str = "cpu") -> SAE:
    """The inference SAE of a training checkpoint folder (e.g. ``OUT.h5.checkpoints/best``):
    finalised and with the input scale folded in, as the run would have saved it."""
    tensors, meta = load_checkpoint(path)
    try:
        cfg = SAEConfig.from_dict(meta["sae_config"])
        config = TrainConfig.from_dict(meta["train_config"])
        arch = get_architecture(cfg.arch)
        sae = SAE(cfg)
        sae.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("sae.")}, strict=True)
        objective = arch.objective(cfg, config)
        objective.load_state_dict({k[10:]: v for k, v in tensors.items() if k.startswith("objective.")}, strict=True)
        in_scale, out_scale = float(meta["in_scale"]), float(meta["out_scale"])
    except SaetoolError:
        raise
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} is incomplete or corrupt ({type(exc).__name__})") from None
    sae = fold_scales(arch.finalize(sae, objective), in_scale, out_scale)
    return sae.to(device=device, dtype=torch_dtype(config.dtype)).eval()


class CheckpointReader(SAEReader):
    """A checkpoint folder (``OUT.h5.checkpoints/best`` etc.) read as the SAE it holds
    (registered in saetool.builtins.sae)."""

    name = "checkpoint"
    description = "saetool training checkpoint folder (state.json + state.safetensors)"

    def can_read(self, path: Path) -> bool:
        if not (path.is_dir() and (path / META).is_file() and (path / TENSORS).is_file()):
            return False
        try:
            return json.loads((path / META).read_text()).get("format") == FORMAT
        except (OSError, ValueError, AttributeError):
            return False

    def read(self, path: Path, device: str) -> Any:
        return sae_from_checkpoint(path, device)
