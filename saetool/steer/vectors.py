"""Steering vectors and the ``vector`` artifact.

A ``vector`` artifact (HDF5, schema 1) holds:

- ``vector`` ``[d]`` float32: the steering vector;
- attributes ``hook`` (where it was made, e.g. ``blocks.15.hook_resid_post``),
  ``layer``, ``model``, ``method`` (``from-sae``, ``diff-means``,
  ``words``, ``import``, ``random``), ``d``, ``norm`` (its L2 norm),
  ``resid_norm_mean`` (mean activation norm at the hook over the prompts it
  was made from, leaving out each prompt's first token, whose norm is an
  outlier; NaN if unknown; ``--scale relative`` uses it) and ``details``
  (JSON: sources, counts, positions, SAE and feature...);
- for ``diff-means``/``words``: ``means/positive`` and ``means/negative``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import h5py
import numpy as np

from saetool.artifacts.store import ArtifactWriter, open_artifact, read_header
from saetool.console import warn
from saetool.errors import SaetoolError
from saetool.models.hooks import layer_of_hook
from saetool.steer.prompts import batches, encode, format_prompts, left_pad, pad_id_of

if TYPE_CHECKING:
    import torch

    from saetool.models.base import HookedModel
    from saetool.sae.model import SAE

# Deferred imports: `sweep --dry-run` reads the default word lists and positions from here without torch: torch,
# safetensors, the .pt reader and the SAE loader load when a vector is made, read or measured.

KIND = "vector"
SCHEMA_VERSION = 1
#: ``method`` of a vector made from an SAE feature (the command's name; files written before 0.x say "sae-feature").
FROM_SAE = "from-sae"
RANDOM = "random"

#: The seed's mini steering test (seed 000) word lists, used when none are given.
DEFAULT_POSITIVE_WORDS = ("happy", "joy", "optimistic", "hopeful", "grateful")
DEFAULT_NEGATIVE_WORDS = ("sad", "hopeless", "depressed", "worthless", "empty")
DEFAULT_WORD_TEMPLATE = "Today I feel {word}"


@dataclass
class SteeringVector:
    """A direction in a model's activation space at one hook."""

    vector: "torch.Tensor"
    hook: str
    model: str | None = None
    method: str = "import"
    details: dict[str, Any] = field(default_factory=dict)
    resid_norm_mean: float | None = None
    positive_mean: "torch.Tensor | None" = None
    negative_mean: "torch.Tensor | None" = None
    path: Path | None = None

    @property
    def layer(self) -> int | None:
        return layer_of_hook(self.hook)

    @property
    def d(self) -> int:
        return int(self.vector.shape[-1])

    @property
    def norm(self) -> float:
        return float(self.vector.float().norm())

    def describe(self) -> str:
        ref = "" if self.resid_norm_mean is None else f", activation norm {self.resid_norm_mean:.1f}"
        return f"{self.method} vector at {self.hook} (d={self.d}, norm {self.norm:.3g}{ref})"


# -- artifact I/O -------------------------------------------------------------------------
def write_vector(path: str | Path, sv: SteeringVector, *, provenance: dict[str, Any], overwrite: bool = False) -> Path:
    """Write ``sv`` as a ``vector`` artifact (atomically); returns the path."""
    with ArtifactWriter(path, KIND, provenance, overwrite=overwrite) as writer:
        fh = writer.file
        assert fh is not None
        ds = fh.create_dataset("vector", data=sv.vector.detach().float().cpu().numpy())
        ds.attrs["saetool_dtype"] = "float32"
        if sv.positive_mean is not None and sv.negative_mean is not None:
            means = fh.create_group("means")
            for name, t in (("positive", sv.positive_mean), ("negative", sv.negative_mean)):
                m = means.create_dataset(name, data=t.detach().float().cpu().numpy())
                m.attrs["saetool_dtype"] = "float32"
        fh.attrs["hook"] = sv.hook
        fh.attrs["layer"] = -1 if sv.layer is None else sv.layer
        fh.attrs["model"] = sv.model or ""
        fh.attrs["method"] = sv.method
        fh.attrs["d"] = sv.d
        fh.attrs["norm"] = sv.norm
        fh.attrs["resid_norm_mean"] = np.nan if sv.resid_norm_mean is None else float(sv.resid_norm_mean)
        fh.attrs["details"] = json.dumps(sv.details, sort_keys=True, default=str)
    return Path(path)


def _text(v: Any) -> Any:
    return v.decode() if isinstance(v, bytes) else v


def read_vector(path: str | Path) -> SteeringVector:
    """Read a ``vector`` artifact."""
    import torch

    with open_artifact(path, kind=KIND) as art:
        fh = art.file
        vec = torch.from_numpy(fh["vector"][()]).float()
        if vec.dim() != 1:
            raise SaetoolError(f"{path}: 'vector' must be 1-D (got shape {list(vec.shape)})")
        pos = torch.from_numpy(fh["means/positive"][()]).float() if "means/positive" in fh else None
        neg = torch.from_numpy(fh["means/negative"][()]).float() if "means/negative" in fh else None
        ref = float(fh.attrs.get("resid_norm_mean", math.nan))
        return SteeringVector(
            vector=vec,
            hook=str(_text(fh.attrs.get("hook", ""))),
            model=str(_text(fh.attrs.get("model", ""))) or None,
            method=FROM_SAE if _text(fh.attrs.get("method")) == "sae-feature" else str(_text(fh.attrs.get("method", "import"))),
            details=json.loads(_text(fh.attrs.get("details", "{}")) or "{}"),
            resid_norm_mean=ref if math.isfinite(ref) else None,
            positive_mean=pos,
            negative_mean=neg,
            path=Path(path),
        )


# -- from an SAE ------------------------------------------------------------------------
def vector_from_sae(sae: "SAE", feature: int, *, source: str | None = None) -> SteeringVector:
    """The decoder direction (row ``feature`` of ``W_dec``) of an SAE feature."""
    cfg = sae.cfg
    if not 0 <= int(feature) < cfg.d_sae:
        raise SaetoolError(f"feature {feature} is out of range", hint=f"the SAE has features 0-{cfg.d_sae - 1}")
    vec = sae.W_dec[int(feature)].detach().float().cpu().clone()
    return SteeringVector(
        vector=vec,
        hook=str(cfg.hook_out),
        model=cfg.model,
        method=FROM_SAE,
        details={"sae": source, "feature": int(feature), "arch": cfg.arch, "d_sae": cfg.d_sae},
    )


def random_like(sv: SteeringVector, *, seed: int, source: str | None = None) -> SteeringVector:
    """A random direction (standard normal, seeded) with ``sv``'s norm, hook and model: the control
    that tells a direction's steering effect from any push of that size."""
    import torch

    if not (math.isfinite(sv.norm) and sv.norm > 0):
        raise SaetoolError(f"the vector {source or ''} has norm {sv.norm:g}: a random direction of that size steers nothing", hint="pass the vector you steered with")
    g = torch.Generator().manual_seed(int(seed))
    vec = torch.randn(sv.d, generator=g, dtype=torch.float64)
    vec = (vec * (sv.norm / float(vec.norm()))).float()
    return SteeringVector(vector=vec, hook=sv.hook, model=sv.model, method=RANDOM, details={"like": source, "like_method": sv.method, "seed": int(seed)},
                          resid_norm_mean=sv.resid_norm_mean)


# -- from activations -----------------------------------------------------------------------
def parse_positions(spec: str) -> str | list[int]:
    """``last`` / ``all`` / a comma list of negative indices (``-1,-2``: positions from the end)."""
    spec = str(spec).strip()
    if spec in ("last", "all"):
        return spec
    try:
        idx = [int(p) for p in spec.split(",") if p.strip()]
    except ValueError:
        idx = []
    if not idx or any(i >= 0 for i in idx):
        raise SaetoolError(f"cannot read positions {spec!r}", hint="use last, all, or negative indices from the end like -1,-2,-3")
    return idx


def mean_activations(
    model: "HookedModel",
    texts: Sequence[str],
    hooks: Sequence[str],
    *,
    positions: str | list[int] = "last",
    chat: bool = True,
    batch_size: int = 16,
) -> dict[str, tuple["torch.Tensor", float, int]]:
    """Per hook: the mean activation at ``positions`` of each text, the mean
    activation norm over every token but each text's first, and the count of
    activations averaged. ``texts`` are already formatted (chat template applied)."""
    import torch

    tok = model.tokenizer
    rows = encode(tok, texts, chat=chat)
    if isinstance(positions, list):
        shortest = min(len(r) for r in rows)
        if max(-i for i in positions) > shortest:
            raise SaetoolError(f"position {min(positions)} is before the start of the shortest prompt ({shortest} tokens)")
    sums: dict[str, torch.Tensor] = {}
    norm_sum = {h: 0.0 for h in hooks}
    norm_n = {h: 0 for h in hooks}
    count = 0
    pad = pad_id_of(tok)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    for chunk in batches(order, max(1, batch_size)):
        ids, mask = left_pad([rows[i] for i in chunk], pad)
        with torch.no_grad():
            cache = model.run_with_cache(ids.to(model.device), list(hooks), attention_mask=mask.to(model.device))
        width = ids.shape[1]
        lengths = mask.sum(1)
        # every real token but the first of each row (the first carries a huge attention-sink norm)
        body = mask.clone()
        body[torch.arange(len(chunk)), width - lengths] = 0
        if positions == "last":
            sel = torch.zeros_like(mask)
            sel[:, -1] = 1
        elif positions == "all":
            sel = body
        else:
            sel = torch.zeros_like(mask)
            for i in positions:
                sel[:, width + i] = 1
        for h in hooks:
            act = cache[h].float().reshape(len(chunk), width, -1).cpu()
            w = sel.unsqueeze(-1).float()
            per_row = (act * w).sum(1) / w.sum(1).clamp(min=1)  # mean over the chosen positions per prompt
            sums[h] = sums.get(h, torch.zeros(act.shape[-1])) + per_row.sum(0)
            norms = act.norm(dim=-1)
            norm_sum[h] += float((norms * body).sum())
            norm_n[h] += int(body.sum())
        count += len(chunk)
    return {h: (sums[h] / count, norm_sum[h] / max(1, norm_n[h]), count) for h in hooks}


def diff_means_vectors(
    model: "HookedModel",
    positive: Sequence[str],
    negative: Sequence[str],
    hooks: Sequence[str],
    *,
    positions: str | list[int] = "last",
    chat: bool = True,
    system: str | None = None,
    batch_size: int = 16,
    method: str = "diff-means",
    details: dict[str, Any] | None = None,
) -> dict[str, SteeringVector]:
    """``mean(positive) - mean(negative)`` at each hook (the prompts are raw; formatted here)."""
    if not positive or not negative:
        raise SaetoolError("a difference of means needs at least one positive and one negative prompt")
    tok = model.tokenizer
    pos = mean_activations(model, format_prompts(tok, positive, chat=chat, system=system), hooks, positions=positions, chat=chat, batch_size=batch_size)
    neg = mean_activations(model, format_prompts(tok, negative, chat=chat, system=system), hooks, positions=positions, chat=chat, batch_size=batch_size)
    out = {}
    for h in hooks:
        (mp, np_, cp), (mn, nn_, cn) = pos[h], neg[h]
        ref = (np_ + nn_) / 2
        info = {
            **(details or {}),
            "n_positive": cp,
            "n_negative": cn,
            "positions": positions,
            "chat": chat,
            "system": system,
        }
        out[h] = SteeringVector(
            vector=mp - mn,
            hook=h,
            model=model.model_id,
            method=method,
            details=info,
            resid_norm_mean=ref,
            positive_mean=mp,
            negative_mean=mn,
        )
    return out


def measure_norm(model: "HookedModel", texts: Sequence[str], hook: str, *, chat: bool, batch_size: int = 16) -> float:
    """Mean activation norm at ``hook`` over every token but the first of each (formatted) text."""
    return mean_activations(model, texts, [hook], positions="all", chat=chat, batch_size=batch_size)[hook][1]


# -- from a file ------------------------------------------------------------------------------
def load_vector_file(path: str | Path) -> "torch.Tensor":
    """A 1-D vector from ``.npy``, ``.pt``/``.pth``, ``.safetensors`` (one tensor) or text (numbers).

    Never unpickles code: ``.pt`` through :func:`saetool.artifacts.torchfiles.load_torch_file`, ``.npy`` without pickle."""
    import torch

    p = Path(path)
    if not p.exists():
        raise SaetoolError(f"vector file {p} does not exist", hint="check the path")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            arr = torch.from_numpy(np.load(p, allow_pickle=False))
        elif suffix in (".pt", ".pth"):
            from saetool.artifacts.torchfiles import load_torch_file

            arr = _single_tensor(load_torch_file(p, what="vector file", hint="save the vector with torch.save(tensor), as .npy or as .safetensors"), p)
        elif suffix == ".safetensors":
            from safetensors.torch import load_file

            arr = _single_tensor(load_file(str(p)), p)
        else:
            arr = torch.tensor([float(x) for x in p.read_text().replace(",", " ").split()])
    except SaetoolError:
        raise
    except Exception as exc:
        raise SaetoolError(f"cannot read a vector from {p} ({type(exc).__name__}: {exc})", hint="use .npy, .pt, .safetensors or a text file of numbers") from None
    arr = arr.float().squeeze()
    if arr.dim() != 1 or arr.numel() == 0:
        raise SaetoolError(f"{p} holds an array of shape {list(arr.shape)}, not a 1-D vector")
    return arr


def _single_tensor(obj: Any, p: Path):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if len(tensors) == 1:
            return next(iter(tensors.values()))
        raise SaetoolError(f"{p} holds {len(tensors)} tensors ({', '.join(list(tensors)[:5])})", hint="save just the vector")
    raise SaetoolError(f"{p} does not hold a tensor")


def import_vector(path: str | Path, hook: str, *, model: str | None = None) -> SteeringVector:
    vec = load_vector_file(path)
    return SteeringVector(vector=vec, hook=hook, model=model, method="import", details={"source": str(Path(path).resolve())})


# -- any steering source -------------------------------------------------------------------------
def artifact_kind_of(path: Path) -> str | None:
    """The ``saetool_kind`` of an HDF5 artifact, or None for anything else."""
    if not path.is_file():
        return None

    if not h5py.is_hdf5(path):
        return None

    try:
        return read_header(path)["saetool_kind"]
    except Exception:
        return None


def check_model_match(sv: SteeringVector, model_id: str) -> None:
    if sv.model and model_id:
        try:
            from saetool.sae.io import same_model
        except Exception:  # pragma: no cover
            same = sv.model == model_id
        else:
            same = same_model(sv.model, model_id)
        if not same:
            warn(f"the steering vector was made on model {sv.model!r} but steering runs on {model_id!r}")
