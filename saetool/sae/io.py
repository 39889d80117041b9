"""Reading and writing SAEs: the ``sae`` HDF5 artifact, plus dispatch to other formats.

The ``sae`` artifact (layout in ``docs/artifacts.md``) holds an SAE's
configuration (``config`` attribute, JSON of :class:`~saetool.sae.config.SAEConfig`),
its weights (``weights/*``), the training settings (``training`` attribute) and
the per-step training history (``history/*``, one 1-D dataset per column).

:func:`load_sae` reads any SAE a registered reader (``register_sae_readers``)
understands: a plugin's formats first, then saetool's own (a training
checkpoint folder, the ``sae`` artifact, SAELens and sparsify folders).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import h5py
import numpy as np

from saetool.artifacts.arrays import from_storage, to_storage
from saetool.artifacts.store import ArtifactWriter, open_artifact, read_header
from saetool.artifacts.validate import bad, json_attr
from saetool.devices import dtype_name
from saetool.errors import ArtifactError, SaetoolError
from saetool.plugins import LoadSAEHookReader, host
from saetool.sae.config import SAEConfig
from saetool.sae.crosscoder import crosscoder_hooks
from saetool.sae.format_api import SAEReader
from saetool.sae.model import build_sae
from saetool.sae.sets import index_of, read_sae_set

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from saetool.sae.model import SAE

# Deferred imports: pandas (about 1 s) only for the training-history reader.

KIND = "sae"
SCHEMA_VERSION = 1

#: The weights every ``sae`` artifact holds (``threshold`` too for ``jumprelu``).
REQUIRED_WEIGHTS = ("W_enc", "W_dec", "b_enc", "b_dec")


# -- writing ---------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars/arrays, 0-d tensors
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def _history_columns(history: Any) -> dict[str, "np.ndarray"]:
    if history is None:
        return {}
    if hasattr(history, "to_dict") and hasattr(history, "columns"):  # a DataFrame
        history = {str(c): history[c].to_numpy() for c in history.columns}
    columns: dict[str, np.ndarray] = {}
    for name, values in dict(history).items():
        if hasattr(values, "detach"):
            values = values.detach().cpu().numpy()
        array = np.asarray(values)
        if array.ndim != 1:
            raise SaetoolError(f"history column {name!r} must be 1-D (got shape {list(array.shape)})")
        if array.dtype == object or array.dtype.kind not in "biuf":
            raise SaetoolError(f"history column {name!r} must be numeric (got {array.dtype})")
        if "/" in str(name):
            raise SaetoolError(f"history column name {name!r} may not contain '/'")
        columns[str(name)] = array
    lengths = {len(a) for a in columns.values()}
    if len(lengths) > 1:
        detail = ", ".join(f"{n}={len(a)}" for n, a in columns.items())
        raise SaetoolError(f"history columns have different lengths ({detail})", hint="log every column at every step")
    return columns


def write_sae_artifact(
    path: str | Path,
    sae: "SAE",
    *,
    provenance: dict[str, Any],
    training: dict[str, Any] | None = None,
    history: "dict[str, np.ndarray] | pd.DataFrame | None" = None,
    write_extra: "Callable[[h5py.File], None] | None" = None,
    overwrite: bool = False,
) -> Path:
    """Write an ``sae`` artifact atomically: config, weights, training settings,
    per-step history; ``write_extra(file)`` may add groups (e.g. ``samples``)
    before the file is committed.

    Weights are stored in the SAE's own dtype (bfloat16 as its raw bits, see
    :mod:`saetool.artifacts.arrays`). ``history`` maps column names (``step``,
    ``loss``, ``mse``, ``l0``, ...) to equal-length 1-D arrays (a DataFrame works
    too). Returns the path written.
    """
    columns = _history_columns(history)  # validate before any file is created
    dtype = dtype_name(sae.dtype)
    config = sae.cfg.to_dict()
    config["dtype"] = dtype
    with ArtifactWriter(path, KIND, provenance, overwrite=overwrite) as writer:
        fh = writer.file
        assert fh is not None
        fh.attrs["config"] = json.dumps(config, sort_keys=True, default=_json_default)
        fh.attrs["training"] = json.dumps(training or {}, sort_keys=True, default=_json_default)
        group = fh.create_group("weights")
        for name, tensor in sae.state_dict().items():
            ds = group.create_dataset(name, data=to_storage(tensor.detach(), dtype))
            ds.attrs["saetool_dtype"] = dtype
        hist = fh.create_group("history")
        hist.attrs["columns"] = json.dumps(list(columns))
        for name, array in columns.items():
            ds = hist.create_dataset(name, data=array)
            ds.attrs["saetool_dtype"] = str(array.dtype)
        if write_extra is not None:
            write_extra(fh)
    return Path(path)


# -- reading ---------------------------------------------------------------------
def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def validate_sae_file(fh: "h5py.File", path: Path) -> None:
    """The ``sae`` kind's own check (run by :func:`~saetool.artifacts.store.open_artifact`):
    a valid config, and exactly its weights, each of the shape it implies."""
    try:
        cfg = SAEConfig.from_dict(json_attr(fh.attrs["config"], path, "config", dict), source=str(path))
    except SaetoolError as exc:
        raise ArtifactError(exc.message, hint=exc.hint) from None
    group = fh["weights"]
    if not isinstance(group, h5py.Group):
        raise bad(path, "weights is not a group")
    expected = cfg.weight_shapes()
    extra = sorted(set(group) - set(expected))
    if extra:
        raise bad(path, f"weights/{extra[0]} is not a weight of a {cfg.activation} SAE")
    for name, shape in expected.items():
        ds = group.get(name)
        if not isinstance(ds, h5py.Dataset):
            raise bad(path, f"it has no dataset 'weights/{name}', required for a {cfg.activation} SAE")
        if tuple(ds.shape) != shape:
            raise bad(path, f"weights/{name} has shape {list(ds.shape)}, but the config (d_in={cfg.d_in}, d_sae={cfg.d_sae}, d_out={cfg.d_out}) implies {list(shape)}")


class SAEArtifact:
    """An open ``sae`` artifact: ``.config`` (SAEConfig), ``.sae(device)``,
    ``.training`` (dict), ``.history`` (pandas DataFrame), ``.file`` (h5py),
    ``.provenance``.

    Use as a context manager (or call :meth:`close`)::

        with read_sae_artifact("sae.h5") as art:
            sae = art.sae("cpu")
            print(art.history.tail())
    """

    def __init__(self, path: str | Path) -> None:
        self._artifact = open_artifact(path, kind=KIND)
        self.path: Path = self._artifact.path
        self.file = self._artifact.file
        self.provenance: dict[str, Any] = self._artifact.provenance
        self.schema_version = self._artifact.schema_version
        # open_artifact has checked both (the kind's attrs rules and validate_sae_file)
        self.config: SAEConfig = SAEConfig.from_dict(json.loads(_text(self.file.attrs["config"])), source=str(self.path))
        self.training: dict[str, Any] = json.loads(_text(self.file.attrs.get("training")) or "{}")

    # -- weights ---------------------------------------------------------------
    def weights(self) -> dict[str, "torch.Tensor"]:
        """Every tensor under ``weights/`` (in the stored dtype, on the CPU)."""
        group = self.file["weights"]
        out = {}
        for name in group:
            ds = group[name]
            stored = _text(ds.attrs.get("saetool_dtype", str(ds.dtype)))
            out[name] = from_storage(ds[()], stored)
        return out

    def sae(self, device: str = "cpu") -> "SAE":
        """The inference SAE with the stored weights, on ``device``."""
        return build_sae(self.config, self.weights(), device, source=str(self.path))

    # -- training record -------------------------------------------------------
    @property
    def history(self) -> "pd.DataFrame":
        """Per-step training history, one column per logged quantity (empty if none)."""
        import pandas as pd

        if "history" not in self.file:
            return pd.DataFrame()
        group = self.file["history"]
        try:
            order = json.loads(_text(group.attrs.get("columns")) or "[]")
        except ValueError:
            order = []
        names = [n for n in order if n in group] + sorted(n for n in group if n not in order)
        return pd.DataFrame({name: group[name][()] for name in names})

    # -- lifetime --------------------------------------------------------------
    def close(self) -> None:
        self._artifact.close()

    def __enter__(self) -> "SAEArtifact":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        c = self.config
        return f"SAEArtifact({str(self.path)!r}, {c.activation}, d_in={c.d_in}, d_sae={c.d_sae}, hook={c.hook!r})"


def read_sae_artifact(path: str | Path) -> SAEArtifact:
    """Open a saetool ``sae`` artifact (read-only); close it when done."""
    return SAEArtifact(path)


# -- any format -------------------------------------------------------------------
def is_sae_artifact(path: Path) -> bool:
    """Whether ``path`` is a saetool ``sae`` artifact (by its header; nothing validated)."""
    try:
        return path.is_file() and h5py.is_hdf5(path) and read_header(path)["saetool_kind"] == KIND
    except Exception:  # not an artifact at all
        return False


class SAEArtifactReader(SAEReader):
    """saetool's own ``sae`` artifact: any HDF5 file (one of another kind is refused by name)."""

    name = "saetool"
    description = "saetool 'sae' artifact (.h5)"

    def can_read(self, path: Path) -> bool:
        return path.is_file() and h5py.is_hdf5(path)

    def read(self, path: Path, device: str) -> "SAE":
        with read_sae_artifact(path) as art:
            return art.sae(device)


def sae_readers() -> list[SAEReader]:
    """Registered readers in the order :func:`load_sae` asks them: plugins' first, then the built-ins."""
    regs = list(host().collect("sae_readers").values())
    return [r.obj for r in regs if not host().is_builtin(r.plugin)] + [r.obj for r in regs if host().is_builtin(r.plugin)]


def _formats_hint(readers: list[SAEReader]) -> str:
    return "tried: " + "; ".join(r.description or r.name for r in readers) + ", or a folder holding one of these; plugins add formats (register_sae_readers)"


def load_sae(path: str | Path, device: str = "cpu") -> "SAE":
    """The SAE at ``path``, read by the first registered reader that can read it.

    A folder no reader reads that holds exactly one subfolder a reader reads
    (e.g. a sparsify run with one hookpoint) loads that one; several are a
    one-line error naming them."""
    readers = sae_readers()
    p = Path(path)
    _refuse_set(p)
    for reader in readers:
        if reader.can_read(p):
            sae = reader.read(p, device)
            if sae is not None:  # only a deprecated load_sae hook passes a path on
                return sae
    if not p.exists():
        raise SaetoolError(f"no SAE at {p}: it does not exist", hint="check the path (an sae .h5 artifact or an SAE folder), or name a pretrained SAE as RELEASE/SAE_ID (saetool sae list)")

    real = [r for r in readers if not isinstance(r, LoadSAEHookReader)]  # it cannot say "yes" without reading
    candidates = sorted(c for c in p.iterdir() if c.is_dir() and any(r.can_read(c) for r in real)) if p.is_dir() else []
    if len(candidates) == 1:
        return load_sae(candidates[0], device)
    if len(candidates) > 1:
        names = [c.name for c in candidates]
        shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
        raise SaetoolError(
            f"{p} holds {len(names)} SAEs ({shown})",
            hint=f"pick one, e.g. {p / names[0]}",
        )
    raise SaetoolError(f"{p} is not an SAE saetool can read", hint=_formats_hint(readers))


# -- consistency checks --------------------------------------------------------------
def _refuse_set(p: Path) -> None:
    """One SAE was asked for and ``p`` is a set of them: a one-line error naming a member."""
    if index_of(p) is None:
        return
    members = read_sae_set(p)
    raise SaetoolError(f"{p} is a set of {len(members)} SAEs ({', '.join(m.hook for m in members[:4])}{', ...' if len(members) > 4 else ''}), and one SAE is needed here", hint=f"pass one of them, e.g. {members[0].path}" if members else "")


def _model_aliases(model: str) -> set[str]:
    """Lower-cased names a model id is known by (registered short name, hub id, its last part)."""
    text = str(model).strip().rstrip("/")
    names = {text.lower(), text.lower().rsplit("/", 1)[-1]}
    try:
        for reg in host().collect("models").values():
            spec = reg.obj
            known = {str(getattr(spec, "name", "")).lower(), str(getattr(spec, "hf_id", "")).lower()}
            if names & (known - {""}):
                names |= known - {""}
                names.add(str(getattr(spec, "hf_id", "")).lower().rsplit("/", 1)[-1])
    except Exception:  # a broken models plugin must not break a consistency check
        pass
    return names - {""}


def same_model(a: str, b: str) -> bool:
    """Whether two model ids (short names, hub ids or local folders) name the same model."""
    return bool(_model_aliases(a) & _model_aliases(b))


def check_sae_matches(sae: "SAE | SAEConfig", *, d_in: int | None = None, hook: str | None = None, model: str | None = None, what: str = "activations") -> None:
    """One-line :class:`SaetoolError` when ``d_in``, ``hook`` or ``model`` (each
    checked only when given, the model only when the SAE records one) do not
    match the SAE's input."""
    cfg = getattr(sae, "cfg", sae)

    hooks = crosscoder_hooks(cfg)
    if hooks and d_in is not None and int(d_in) != cfg.d_in:
        raise SaetoolError(
            f"the SAE is a crosscoder over {len(hooks)} hooks ({hooks[0]} ... {hooks[-1]}, d_in={cfg.d_in} side by side) and this command reads one hook",
            hint="evaluate it with `saetool evaluate CROSSCODER ACTS` (ACTS holding its hooks), or read its per-hook decoder norms with `saetool track`",
        )
    if d_in is not None and int(d_in) != cfg.d_in:
        raise SaetoolError(f"the SAE expects d_in={cfg.d_in} but the {what} have d={d_in}", hint="use activations from the SAE's model and hook")
    if hook is not None and hook != cfg.hook:
        raise SaetoolError(f"the SAE reads {cfg.hook} but the {what} are from {hook}", hint="extract that hook, or pass the matching SAE")
    if model is not None and cfg.model and not same_model(model, cfg.model):
        raise SaetoolError(f"the SAE was trained on model {cfg.model!r} but the {what} are from {model!r}", hint="use the SAE's model, or pass an SAE trained on this one")
