"""SAELens folders: ``cfg.json`` + ``sae_weights.safetensors``.

Written in the SAELens 6.x format, so ``sae_lens.SAE.load_from_disk(folder)``
loads it; read from folders SAELens wrote (``SAE.save_model``,
``TrainingSAE.save_model``/``save_inference_model``, and pre-6.0 configs).

Architecture mapping (saetool activation -> SAELens ``architecture``):

============  ===========  ==========================
activation    SAE          transcoder (hook_out != hook)
============  ===========  ==========================
relu          standard     transcoder
topk          topk (+k)    not in SAELens (refused)
jumprelu      jumprelu     jumprelu_transcoder
============  ===========  ==========================

SAELens weights have the same names and shapes as saetool's (``W_enc [d_in,
d_sae]``, ``b_enc``, ``W_dec [d_sae, d_out]``, ``b_dec``, ``threshold``).
Differences handled when reading:

- SAELens' JumpReLU is ``relu(pre) * (pre > threshold)``; saetool's is
  ``pre * (pre > threshold)``. They agree for thresholds >= 0, so negative
  thresholds are read as 0 (exact); exporting negative thresholds warns.
- ``rescale_acts_by_decoder_norm`` (TopK/BatchTopK) is folded into the weights
  as SAELens' own ``save_inference_model`` does (exact).
- BatchTopK / Matryoshka BatchTopK training checkpoints become ``jumprelu``
  with their learned ``topk_threshold``, as SAELens saves them for inference.
- ``normalize_activations="expected_average_only_in"``: the scaling factor in
  ``activation_scaler.json`` (a training checkpoint) is folded in; without one
  the SAE is read as is, like ``SAE.load_from_disk`` does. ``layer_norm``,
  ``constant_norm_rescale`` (per-input, not foldable) and
  ``covariance_whitening`` are refused with a one-line error.
- pre-6.0 configs: ``hook_point``/``activation_fn_str`` names, a
  ``scaling_factor`` (finetuning) weight folded into ``W_dec``.
- Skip transcoders (``skip_transcoder``, ``jumprelu_skip_transcoder``) keep their
  ``W_skip`` (``[d_out, d_in]`` in SAELens, transposed in saetool), and export back
  to those architectures; an all-zero ``W_skip`` is dropped.
- Gated, AbsTopK, temporal and matching-pursuit SAEs have no saetool equivalent and are refused.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

import saetool
from saetool.console import warn
from saetool.devices import dtype_name
from saetool.errors import ArtifactError, SaetoolError
from saetool.sae.config import SAEConfig
from saetool.sae.crosscoder import refuse_crosscoder
from saetool.sae.format_api import ExportSettings, SAEExporter, SAEReader, format_folder
from saetool.sae.formats import atomic_output_dir
from saetool.sae.io import is_sae_artifact, load_sae, read_sae_artifact
from saetool.sae.model import build_sae

if TYPE_CHECKING:
    from saetool.sae.model import SAE

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
ACTIVATION_SCALER_FILENAME = "activation_scaler.json"

#: ``metadata.sae_lens_version`` written: the config format (SAELens >= 6.0 reads
#: configs without it, or older, as pre-6.0 ones).
SAELENS_FORMAT_VERSION = "6.0.0"

#: saetool activation -> SAELens architecture, for SAEs and for transcoders.
EXPORT_ARCHITECTURES = {
    False: {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu"},
    True: {"relu": "transcoder", "jumprelu": "jumprelu_transcoder"},
}

#: SAELens architecture -> (saetool activation, is a transcoder).
IMPORT_ARCHITECTURES = {
    "standard": ("relu", False),
    "topk": ("topk", False),
    "jumprelu": ("jumprelu", False),
    "batchtopk": ("jumprelu", False),
    "matryoshka_batchtopk": ("jumprelu", False),
    "transcoder": ("relu", True),
    "skip_transcoder": ("relu", True),
    "jumprelu_transcoder": ("jumprelu", True),
    "jumprelu_skip_transcoder": ("jumprelu", True),
}

_KEY_RENAMES_PRE_6 = {"hook_point": "hook_name", "hook_point_head_index": "hook_head_index", "activation_fn_str": "activation_fn"}


# -- export -------------------------------------------------------------------------
def saelens_config(sae: "SAE", *, model_name: str | None = None, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``cfg.json`` dictionary SAELens 6.x reads for ``sae``."""
    cfg = sae.cfg
    transcoder = cfg.is_transcoder
    arch = EXPORT_ARCHITECTURES[transcoder].get(cfg.activation)
    if cfg.skip:
        arch = {"relu": "skip_transcoder", "jumprelu": "jumprelu_skip_transcoder"}.get(cfg.activation) if transcoder else None
        if arch is None:
            raise SaetoolError(f"SAELens has no {cfg.activation} {'transcoder' if transcoder else 'SAE'} with a skip connection", hint="SAELens skip transcoders are relu or jumprelu transcoders")
    if arch is None:
        kind = "transcoder" if transcoder else "SAE"
        raise SaetoolError(
            f"SAELens has no {cfg.activation} {kind} architecture",
            hint="SAELens transcoders are relu or jumprelu; export a relu/jumprelu transcoder, or keep the saetool artifact",
        )
    meta: dict[str, Any] = {
        "model_name": model_name or cfg.model,
        "hook_name": cfg.hook,
        "hook_head_index": None,
        "prepend_bos": True,
        "sae_lens_version": SAELENS_FORMAT_VERSION,
        "sae_lens_training_version": SAELENS_FORMAT_VERSION,
        "saetool_version": saetool.__version__,
        "saetool_arch": cfg.arch,
    }
    if transcoder:
        meta["hook_name_out"] = cfg.hook_out
    meta.update({k: v for k, v in (metadata or {}).items() if v is not None})
    out: dict[str, Any] = {
        "architecture": arch,
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": dtype_name(sae.dtype),
        "device": "cpu",
        "apply_b_dec_to_input": cfg.subtracts_b_dec,
        "normalize_activations": "none",
        "reshape_activations": "hook_z" if cfg.hook.endswith("hook_z") else "none",
        "metadata": meta,
    }
    if arch == "topk":
        out["k"] = int(cfg.k)  # type: ignore[arg-type]
        out["rescale_acts_by_decoder_norm"] = False
    if transcoder:
        out["d_out"] = cfg.d_out
    return out


def export_saelens(
    sae: "SAE",
    out_dir: str | Path,
    *,
    model_name: str | None = None,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``sae`` as an SAELens folder (``cfg.json`` + ``sae_weights.safetensors``)
    that ``sae_lens.SAE.load_from_disk(out_dir)`` loads with the same encode/decode.

    ``model_name`` defaults to the SAE's ``cfg.model``; ``metadata`` adds SAELens
    metadata keys (e.g. ``context_size``, ``prepend_bos``, ``dataset_path``). The
    folder is written atomically; an existing non-empty one needs ``overwrite``.
    """
    config = saelens_config(sae, model_name=model_name, metadata=metadata)
    if sae.cfg.activation == "jumprelu" and bool((sae.threshold < 0).any()):
        n = int((sae.threshold < 0).sum())
        warn(
            f"{n} jumprelu threshold(s) are negative; SAELens applies ReLU before the threshold, "
            "so those features will not pass negative pre-activations as saetool does"
        )
    tensors = {name: t.detach().cpu().contiguous() for name, t in sae.state_dict().items()}
    if "W_skip" in tensors:  # SAELens keeps it [d_out, d_in]
        tensors["W_skip"] = tensors["W_skip"].T.contiguous()
    with atomic_output_dir(out_dir, overwrite=overwrite) as work:
        work.mkdir()
        save_file(tensors, str(work / WEIGHTS_FILENAME))
        (work / CFG_FILENAME).write_text(json.dumps(config, indent=2) + "\n")
    return Path(out_dir)


# -- import -------------------------------------------------------------------------
def _major(version: Any) -> int:
    try:
        return int(str(version).strip().lstrip("v").split(".")[0])
    except (TypeError, ValueError):
        return 0


def _normalize_config(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, metadata) in the SAELens 6.x shape, from a 6.x or pre-6.0 cfg.json."""
    metadata = dict(raw.get("metadata") or {})
    version = raw.get("sae_lens_version") or metadata.get("sae_lens_version")
    if version and _major(version) >= 6:
        return dict(raw), metadata
    cfg = {_KEY_RENAMES_PRE_6.get(k, k): v for k, v in raw.items()}
    cfg.setdefault("apply_b_dec_to_input", True)
    cfg.setdefault("architecture", "standard")
    act = cfg.get("activation_fn", "relu")
    kwargs = cfg.get("activation_fn_kwargs") or {}
    if act == "topk" and kwargs.get("k") is not None:
        cfg["architecture"] = "topk"
        cfg["k"] = kwargs["k"]
    elif act not in (None, "relu") and cfg["architecture"] == "standard":
        raise SaetoolError(f"SAELens activation_fn {act!r} is not supported by saetool", hint="saetool reads relu, topk and jumprelu SAEs")
    norm = cfg.get("normalize_activations")
    if isinstance(norm, bool) or norm is None:
        cfg["normalize_activations"] = "expected_average_only_in" if norm else "none"
    for key in ("model_name", "hook_name", "hook_head_index", "context_size", "prepend_bos", "dataset_path", "hook_name_out"):
        if key in cfg and key not in metadata:
            metadata[key] = cfg[key]
    return cfg, metadata


def _fold_decoder_norm(w: dict[str, "torch.Tensor"]) -> None:
    """``rescale_acts_by_decoder_norm``: topk on ``pre * |W_dec|``, decode ``f / |W_dec|``.
    Folded exactly: ``W_enc, b_enc *= |W_dec|``, ``W_dec /= |W_dec|``."""
    norm = w["W_dec"].norm(dim=-1)
    w["W_enc"] = w["W_enc"] * norm
    w["b_enc"] = w["b_enc"] * norm
    w["W_dec"] = w["W_dec"] / norm.unsqueeze(1)


def _fold_scaling_factor(w: dict[str, "torch.Tensor"], factor: float) -> None:
    """The SAE was trained on ``x * factor``: as SAELens' ``fold_activation_norm_scaling_factor``."""
    w["W_enc"] = w["W_enc"] * factor
    w["W_dec"] = w["W_dec"] / factor
    w["b_dec"] = w["b_dec"] / factor


def _check_weights(folder: Path, weights: dict[str, "torch.Tensor"], cfg: "SAEConfig") -> None:
    """Every tensor SAELens may save has the shape ``cfg.json`` implies and holds
    floating-point numbers: one line naming the file and the tensor otherwise."""
    missing = [k for k in ("W_enc", "W_dec", "b_dec") if k not in weights]
    if missing:
        raise ArtifactError(f"SAELens weights in {folder} lack {', '.join(missing)}", hint="the folder is corrupt or not an SAELens SAE")
    d_out = int(cfg.d_out or cfg.d_in)
    shapes = {**cfg.weight_shapes(), "threshold": (cfg.d_sae,), "log_threshold": (cfg.d_sae,), "topk_threshold": (),
              "scaling_factor": (cfg.d_sae,), "finetuning_scaling_factor": (cfg.d_sae,), "W_skip": (d_out, cfg.d_in)}
    for name, tensor in weights.items():
        expected = shapes.get(name)
        if not tensor.is_floating_point():
            raise ArtifactError(f"{folder / WEIGHTS_FILENAME}: {name} holds {str(tensor.dtype).removeprefix('torch.')} values, not floating-point numbers", hint="the folder is corrupt or not an SAELens SAE")
        if expected is not None and tuple(tensor.shape) != expected and not (expected == () and tensor.numel() == 1):
            raise ArtifactError(
                f"{folder / WEIGHTS_FILENAME}: {name} has shape {list(tensor.shape)}, but {CFG_FILENAME} (d_in={cfg.d_in}, d_sae={cfg.d_sae}, d_out={d_out}) implies {list(expected)}",
                hint="cfg.json and the weights disagree (corrupt or hand-edited?)",
            )


def _scaling_factor(scaler: Path) -> float | None:
    """The ``scaling_factor`` in ``activation_scaler.json``: None without one, a one-line error when it is not a positive number."""
    if not scaler.is_file():
        return None
    try:
        factor = json.loads(scaler.read_text()).get("scaling_factor")
    except (OSError, ValueError, AttributeError):
        return None
    if factor is None:
        return None
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor <= 0:
        raise ArtifactError(f"{scaler}: scaling_factor is {json.dumps(factor)[:40]}, expected a positive number", hint="the file is corrupt or hand-edited")
    return float(factor)


def load_saelens(path: str | Path, device: str = "cpu") -> "SAE":
    """A saetool SAE from an SAELens folder, with SAELens' encode/decode."""
    folder = Path(path)
    try:
        raw = json.loads((folder / CFG_FILENAME).read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read SAELens config {folder / CFG_FILENAME} ({exc})") from None
    if not isinstance(raw, dict):
        raise ArtifactError(f"SAELens config {folder / CFG_FILENAME} is not a JSON object")
    cfg, meta = _normalize_config(raw)
    arch = str(cfg.get("architecture", "standard"))
    if arch not in IMPORT_ARCHITECTURES:
        raise SaetoolError(
            f"{folder} is an SAELens {arch!r} SAE, which saetool cannot represent",
            hint="saetool reads SAELens architectures: " + ", ".join(IMPORT_ARCHITECTURES),
        )
    activation, transcoder = IMPORT_ARCHITECTURES[arch]
    cfg_file = folder / CFG_FILENAME
    hook = meta.get("hook_name") or cfg.get("hook_name")
    if not hook:
        raise ArtifactError(f"SAELens config {cfg_file} names no hook_name")
    hook_out = None
    if transcoder:
        hook_out = meta.get("hook_name_out") or f"{hook}.out"
        if hook_out == hook:
            hook_out = f"{hook}.out"
    options = {"source_format": "saelens", "saelens_architecture": arch}
    if meta.get("hook_head_index") is not None:
        options["hook_head_index"] = meta["hook_head_index"]
    for key in ("context_size", "prepend_bos", "dataset_path", "neuronpedia_id"):
        if meta.get(key) is not None:
            options[key] = meta[key]
    for key in ("d_in", "d_sae"):
        if key not in cfg:
            raise ArtifactError(f"SAELens config {cfg_file} has no {key!r}")
    try:  # SAEConfig checks every field (d_in, d_sae, d_out, k: positive integers)
        sae_cfg = SAEConfig(
            arch=arch,
            d_in=cfg["d_in"],
            d_sae=cfg["d_sae"],
            hook=str(hook),
            activation=activation,
            hook_out=hook_out,
            d_out=cfg.get("d_out") if transcoder else None,
            k=cfg.get("k", 100) if activation == "topk" else None,
            model=meta.get("model_name"),
            apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)) and not transcoder,
            options=options,
        )
    except SaetoolError as exc:
        raise ArtifactError(f"{cfg_file}: {exc.message}", hint=exc.hint) from None
    try:
        weights = load_file(str(folder / WEIGHTS_FILENAME))
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactError(f"cannot read SAELens weights {folder / WEIGHTS_FILENAME} ({exc})") from None
    _check_weights(folder, weights, sae_cfg)
    src_dtype = weights["W_enc"].dtype if weights["W_enc"].dtype != torch.float64 else torch.float32
    sae_cfg.dtype = dtype_name(src_dtype)
    w = {k: v.to(torch.float32) for k, v in weights.items()}  # fold in float32, cast back at the end
    w.setdefault("b_enc", torch.zeros(sae_cfg.d_sae))

    # normalisation of the input
    norm = cfg.get("normalize_activations", "none") or "none"
    if norm in ("layer_norm", "constant_norm_rescale"):
        raise SaetoolError(
            f"{folder} uses normalize_activations={norm!r}, a per-input normalisation saetool SAEs cannot represent",
            hint="only SAEs with normalize_activations 'none' or 'expected_average_only_in' can be read",
        )
    if norm == "covariance_whitening":
        raise SaetoolError(
            f"{folder} uses normalize_activations='covariance_whitening' with the whitening not folded in",
            hint="load it in SAELens, call sae.fold_activation_whitening(...) and save_model, then read that folder",
        )

    # pre-6.0 finetuning scaling factor: decode(f * s) == f @ (s[:, None] * W_dec)
    for key in ("scaling_factor", "finetuning_scaling_factor"):
        if key in w:
            w["W_dec"] = w["W_dec"] * w.pop(key).reshape(-1, 1)

    if cfg.get("rescale_acts_by_decoder_norm") and arch in ("topk", "batchtopk", "matryoshka_batchtopk"):
        _fold_decoder_norm(w)
    if arch in ("batchtopk", "matryoshka_batchtopk"):
        if "topk_threshold" not in w:
            raise ArtifactError(f"SAELens {arch} weights in {folder} lack topk_threshold", hint="save it with save_inference_model, or pass the inference folder")
        w["threshold"] = torch.full((sae_cfg.d_sae,), float(w.pop("topk_threshold")))
    if "log_threshold" in w:  # older JumpReLU training checkpoints
        w["threshold"] = torch.exp(w.pop("log_threshold"))
    if activation == "jumprelu":
        if "threshold" not in w:
            raise ArtifactError(f"SAELens {arch} weights in {folder} lack threshold")
        w["threshold"] = w["threshold"].clamp(min=0)  # SAELens: relu(pre) * (pre > threshold)
    if "W_skip" in w:  # SAELens: + x @ W_skip.T, W_skip [d_out, d_in]; saetool keeps [d_in, d_out]
        skip = w.pop("W_skip")
        if bool(skip.abs().max() > 0):
            sae_cfg.skip = True
            w["W_skip"] = skip.T.contiguous()

    if norm == "expected_average_only_in":
        factor = _scaling_factor(folder / ACTIVATION_SCALER_FILENAME)
        if factor is not None:
            _fold_scaling_factor(w, factor)
        else:
            warn(
                f"{folder} has normalize_activations='expected_average_only_in' but no scaling factor "
                "to fold in; reading it as is (as SAELens' load_from_disk does)"
            )

    return build_sae(sae_cfg, w, device, source=f"SAELens folder {folder}")


# -- the format's reader and exporter (registered in saetool.builtins.sae_formats) -----------
class SAELensReader(SAEReader):
    name = "saelens"
    description = "SAELens folder (cfg.json + sae_weights.safetensors)"

    def can_read(self, path: Path) -> bool:
        folder = format_folder(path, (CFG_FILENAME, WEIGHTS_FILENAME))
        return (folder / CFG_FILENAME).is_file() and (folder / WEIGHTS_FILENAME).is_file()

    def read(self, path: Path, device: str) -> "SAE":
        return load_saelens(format_folder(path, (CFG_FILENAME, WEIGHTS_FILENAME)), device)


class SAELensExporter(SAEExporter):
    name = "saelens"
    description = "an SAELens folder (cfg.json + sae_weights.safetensors) that sae_lens.SAE.load_from_disk loads"

    def export(self, sae: Path, out: Path, settings: ExportSettings) -> str:
        model = load_sae(sae, settings.device)
        refuse_crosscoder(model, self.name)
        export_saelens(model, out, model_name=settings.model_name, metadata=artifact_metadata(sae))
        c = model.cfg
        return f"SAELens {c.activation} SAE, d_in={c.d_in}, d_sae={c.d_sae}, hook {c.hook}"


def artifact_metadata(path: Path) -> dict[str, Any]:
    """SAELens metadata taken from a saetool artifact's training settings, when known."""
    if not is_sae_artifact(path):
        return {}
    with read_sae_artifact(path) as art:
        training = art.training
    meta: dict[str, Any] = {}
    for key in ("context_size", "prepend_bos", "exclude_special_tokens"):
        if training.get(key) is not None:
            meta[key] = training[key]
    if training.get("corpus") is not None:
        meta["dataset_path"] = str(training["corpus"])
    return meta
