"""Pretrained SAEs by name: ``RELEASE/SAE_ID`` through the registry the ``sae-lens`` package ships.

``sae_lens/pretrained_saes.yaml`` maps a release (``gpt2-small-res-jb``,
``gemma-scope-2b-pt-res``, ``llama_scope_lxr_8x``...) to a Hugging Face repo, a model, a
``conversion_func`` (the on-disk format) and its SAEs, each an ``id``, a ``path`` (the
folder in the repo) and, when listed, ``l0``, ``neuronpedia``... saetool reads that file
as data, found with :func:`importlib.util.find_spec` without importing ``sae_lens`` (slow
and heavy), and parses only the release asked for (the whole file is 40k lines). Files
named by ``SAETOOL_SAE_REGISTRY`` (``os.pathsep``-separated, same schema) add releases
or replace those of the same name.

Files come from the Hugging Face cache when there (offline works), from the hub when
online (:mod:`saetool.hub` decides), and a missing file with no network is one line
naming the ``hf download`` command that fetches it. The folder found is then read by the
registered SAE readers like any local folder.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from saetool.console import log
from saetool.errors import SaetoolError, did_you_mean
from saetool.hub import hub_reachable, offline_requested
from saetool.models.hooks import hook_name
from saetool.sae.format_api import SAEReader
from saetool.sae.io import load_sae, same_model

# Deferred imports: huggingface_hub's downloader (about 0.3 s) only when a pretrained SAE is fetched or looked up in the hub cache.

REGISTRY_FILENAME = "pretrained_saes.yaml"
ENV_EXTRA = "SAETOOL_SAE_REGISTRY"

#: sae-lens ``conversion_func`` -> (saetool format, files the folder needs, optional files)
FORMATS: dict[str | None, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    None: ("saelens", ("cfg.json", "sae_weights.safetensors"), ()),
    "gemma_2": ("gemma-scope", ("params.npz",), ()),
    "gemma_2_transcoder": ("gemma-scope", ("params.npz",), ()),
    "gemma_3": ("gemma-scope-2", ("params.safetensors",), ("config.json",)),
    "llama_scope": ("llama-scope", ("hyperparams.json", "checkpoints/final.safetensors"), ()),
    "dictionary_learning_1": ("dictionary-learning", ("ae.pt", "config.json"), ()),
}

_RELEASE_LINE = re.compile(r"^([^\s#][^:\n]*):[ \t]*$", re.M)
_TOP_KEY = re.compile(r"^  (\w+):", re.M)
_ID_LINE = re.compile(r"^  - id:", re.M)
_WIDTH = re.compile(r"width[_-]?(\d+(?:\.\d+)?)([km]?)(?![0-9a-z])", re.I)
_LAYER = re.compile(r"(?:layer[_-]?|blocks\.|\bL)(\d+)", re.I)


# -- the registry files ----------------------------------------------------------------------
def registry_files() -> list[Path]:
    """The YAML files read, lowest priority first: sae-lens' own, then ``SAETOOL_SAE_REGISTRY``'s."""
    files: list[Path] = []
    try:
        spec = importlib.util.find_spec("sae_lens")  # locates the package; runs none of it
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        if (Path(loc) / REGISTRY_FILENAME).is_file():
            files.append(Path(loc) / REGISTRY_FILENAME)
            break
    for extra in filter(None, os.environ.get(ENV_EXTRA, "").split(os.pathsep)):
        if not Path(extra).is_file():
            raise SaetoolError(f"{ENV_EXTRA} names {extra}, which is not a file", hint="point it at a YAML file laid out like sae_lens/pretrained_saes.yaml")
        files.append(Path(extra))
    return files


@lru_cache(maxsize=8)
def _blocks(path: str, mtime: float) -> dict[str, str]:
    """Each release's text in one registry file (parsed lazily, one release at a time)."""
    text = Path(path).read_text(encoding="utf-8")
    starts = [(m.group(1).strip().strip("'\""), m.start()) for m in _RELEASE_LINE.finditer(text)]
    return {name: text[start : (starts[i + 1][1] if i + 1 < len(starts) else len(text))] for i, (name, start) in enumerate(starts)}


def _release_texts() -> dict[str, str]:
    files = registry_files()
    if not files:
        raise SaetoolError("no pretrained-SAE registry: the sae-lens package is not installed", hint="pip install sae-lens (it ships pretrained_saes.yaml), or set SAETOOL_SAE_REGISTRY to a registry YAML")
    out: dict[str, str] = {}
    for f in files:
        out.update(_blocks(str(f), f.stat().st_mtime))
    return out


def release_names() -> list[str]:
    """Every known release, sorted."""
    return sorted(_release_texts())


def _parse(text: str, *, with_saes: bool) -> dict[str, Any]:
    if not with_saes:  # the release's own keys only: cut the (long) saes list out
        keys = list(_TOP_KEY.finditer(text))
        cut = [(m.start(), keys[i + 1].start() if i + 1 < len(keys) else len(text)) for i, m in enumerate(keys) if m.group(1) == "saes"]
        count = len(_ID_LINE.findall(text))
        for start, end in reversed(cut):
            text = text[:start] + text[end:]
    data = yaml.safe_load(text)
    body = next(iter(data.values())) if isinstance(data, dict) and data else None
    if not isinstance(body, dict):
        raise SaetoolError("the pretrained-SAE registry is malformed here:\n" + text[:80], hint="reinstall sae-lens, or fix the SAETOOL_SAE_REGISTRY file")
    if not with_saes:
        body["n_saes"] = count
    return body


# -- releases and entries ---------------------------------------------------------------------
@dataclass(frozen=True)
class Release:
    """A release's own fields (no SAE list)."""

    name: str
    repo_id: str
    model: str
    conversion_func: str | None
    n_saes: int
    links: dict[str, Any] = field(default_factory=dict)

    @property
    def format(self) -> str | None:
        """The saetool format name its SAEs are in, or None when saetool cannot read them."""
        return FORMATS[self.conversion_func][0] if self.conversion_func in FORMATS else None


@dataclass(frozen=True)
class PretrainedSAE:
    """One registry entry: where its files are and what is known without downloading them."""

    release: Release
    sae_id: str
    path: str  # the folder in the repo
    l0: float | None = None
    neuronpedia: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.release.name}/{self.sae_id}"

    @property
    def hook(self) -> str | None:
        """The hook, when the id or path says it (``blocks.8.hook_resid_pre``, ``layer_20`` of a ``-res`` repo)."""
        for text in (self.sae_id, self.path):
            m = re.search(r"blocks\.\d+\.[\w.]*hook_\w+", text)
            if m:
                return m.group(0)
        m = _LAYER.search(self.sae_id) or _LAYER.search(self.path)
        if not m:
            return None
        layer, repo = int(m.group(1)), (self.release.repo_id + "/" + self.path).lower()
        for key, site in (("transcoder", "ln2.hook_normalized"), ("resid_post", "hook_resid_post"), ("-res", "hook_resid_post"), ("lxr", "hook_resid_post"),
                          ("mlp", "hook_mlp_out"), ("att", "attn.hook_z")):  # Gemma Scope's attention SAEs read hook_z
            if key in repo:
                return hook_name(layer, site)
        return None

    @property
    def width(self) -> int | None:
        m = _WIDTH.search(self.sae_id) or _WIDTH.search(self.path)
        if not m:
            return None
        return int(float(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()])

    def files(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(required, optional) file names in the SAE's folder; unsupported formats are one line."""
        conv = self.release.conversion_func
        if conv not in FORMATS or (conv == "gemma_3" and "clt" in self.path):
            readable = ", ".join(sorted(str(k) for k in FORMATS if k))
            raise SaetoolError(
                f"{self.name} is stored in sae-lens' {conv!r} format, which saetool does not read",
                hint=f"saetool reads releases in the SAELens format and {readable}; convert it with sae_lens (SAE.from_pretrained, then save_model) and pass the folder",
            )
        return FORMATS[conv][1], FORMATS[conv][2]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "release": self.release.name, "sae_id": self.sae_id, "model": self.release.model,
            "repo_id": self.release.repo_id, "path": self.path, "hook": self.hook, "width": self.width, "l0": self.l0,
            "format": self.release.format, "conversion_func": self.release.conversion_func, "neuronpedia": self.neuronpedia,
        }


def _release(name: str, body: dict[str, Any], n_saes: int) -> Release:
    return Release(name=name, repo_id=str(body.get("repo_id", "")), model=str(body.get("model", "")), conversion_func=body.get("conversion_func"), n_saes=n_saes, links=dict(body.get("links") or {}))


def releases(model: str | None = None) -> list[Release]:
    """Every release (its own fields), those of ``model`` only when given (any name it is known by)."""
    out = []
    for name, text in sorted(_release_texts().items()):
        body = _parse(text, with_saes=False)
        rel = _release(name, body, int(body.get("n_saes", 0)))
        if model is None or _same_model(model, rel.model):
            out.append(rel)
    return out


def _same_model(a: str, b: str) -> bool:
    return same_model(a, b) or a.lower().rsplit("/", 1)[-1] == b.lower().rsplit("/", 1)[-1]


def _unknown_release(name: str) -> SaetoolError:
    hint = did_you_mean(name, release_names()) or "saetool sae list shows the known releases"
    return SaetoolError(f"unknown pretrained SAE release {name!r}", hint=hint)


def release_saes(name: str) -> list[PretrainedSAE]:
    """Every SAE of release ``name``."""
    texts = _release_texts()
    if name not in texts:
        raise _unknown_release(name)
    body = _parse(texts[name], with_saes=True)
    saes = body.get("saes") or []
    rel = _release(name, body, len(saes))
    out = []
    for entry in saes:
        if not isinstance(entry, dict) or "id" not in entry:
            continue
        known = {"id", "path", "l0", "neuronpedia"}
        out.append(PretrainedSAE(rel, str(entry["id"]), str(entry.get("path", entry["id"])), entry.get("l0"), entry.get("neuronpedia"), {k: v for k, v in entry.items() if k not in known}))
    return out


def split_name(name: str) -> tuple[str, str] | None:
    """``RELEASE/SAE_ID`` -> (release, id) when RELEASE is a known release; None otherwise (cheap)."""
    text = str(name).strip()
    if "/" not in text:
        return None
    release, sae_id = text.split("/", 1)
    try:
        known = _release_texts()
    except SaetoolError:
        return None
    return (release, sae_id) if release in known and sae_id else None


def lookup(name: str) -> PretrainedSAE:
    """The registry entry ``RELEASE/SAE_ID``; an unknown one is one line with the closest names."""
    if "/" not in str(name):
        raise SaetoolError(f"{name!r} is not a pretrained SAE name", hint="name one as RELEASE/SAE_ID (saetool sae list)")
    release, sae_id = str(name).split("/", 1)
    entries = {e.sae_id: e for e in release_saes(release)}
    if sae_id not in entries:
        hint = did_you_mean(sae_id, entries) or f"saetool sae list --release {release} shows its {len(entries)} SAEs"
        raise SaetoolError(f"release {release} has no SAE {sae_id!r}", hint=hint)
    return entries[sae_id]


# -- files: the Hugging Face cache, else the hub -----------------------------------------------
def hub_cache_dir() -> str | None:
    """The hub cache folder, read from the environment now (huggingface_hub reads it once, at import)."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return env
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def cached_file(entry: PretrainedSAE, filename: str) -> Path | None:
    """The cached copy of ``filename`` in the SAE's folder, or None."""
    from huggingface_hub import try_to_load_from_cache

    got = try_to_load_from_cache(entry.release.repo_id, f"{entry.path}/{filename}".lstrip("/"), cache_dir=hub_cache_dir())
    return Path(got) if isinstance(got, str) else None


def fetch_command(entry: PretrainedSAE) -> str:
    """The command that puts the SAE's files into the cache."""
    return f"hf download {entry.release.repo_id} --include '{entry.path}/*'"


def local_folder(entry: PretrainedSAE) -> Path:
    """The SAE's folder in the Hugging Face cache, downloading what is missing when the hub is reachable."""
    required, optional = entry.files()
    found: dict[str, Path] = {}
    missing = []
    for name in required + optional:
        got = cached_file(entry, name)
        if got is not None:
            found[name] = got
        elif name in required:
            missing.append(name)
    if missing:
        if offline_requested() or not hub_reachable():
            raise SaetoolError(
                f"pretrained SAE {entry.name} is not in the Hugging Face cache ({', '.join(missing)} missing) and the hub is unreachable",
                hint=f"fetch it once online: {fetch_command(entry)}",
            )
        found.update(_download(entry, missing, optional))
    anchor = found[required[0]]
    depth = len(Path(required[0]).parts)  # checkpoints/final.safetensors sits two below the folder
    return anchor.parents[depth - 1]


def _download(entry: PretrainedSAE, names: tuple[str, ...] | list[str], optional: tuple[str, ...]) -> dict[str, Path]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    log(f"downloading {entry.name} from {entry.release.repo_id}")
    out = {}
    for name in [*names, *optional]:
        try:
            out[name] = Path(hf_hub_download(entry.release.repo_id, f"{entry.path}/{name}".lstrip("/"), cache_dir=hub_cache_dir()))
        except EntryNotFoundError:
            if name in names:
                raise SaetoolError(f"{entry.release.repo_id} has no {entry.path}/{name}", hint="the registry and the repo disagree; update sae-lens") from None
        except Exception as exc:  # network, gated repo, disk
            raise SaetoolError(f"cannot download {entry.name} from {entry.release.repo_id} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})", hint=f"try: {fetch_command(entry)}") from None
    return out


def resolve(name: str) -> Path:
    """The local folder holding the pretrained SAE ``RELEASE/SAE_ID`` (cache, else hub)."""
    return local_folder(lookup(name))


class PretrainedReader(SAEReader):
    """Reads ``RELEASE/SAE_ID`` names (registered in saetool.builtins.sae_formats, after every
    format, so an existing path always wins): resolves the folder, then asks the format readers."""

    name = "pretrained"
    description = "a pretrained SAE name RELEASE/SAE_ID (saetool sae list)"

    def can_read(self, path: Path) -> bool:
        return not Path(path).exists() and split_name(str(path)) is not None

    def read(self, path: Path, device: str):
        entry = lookup(str(path))
        sae = load_sae(local_folder(entry), device)
        if not sae.cfg.model:
            sae.cfg.model = entry.release.model
        sae.cfg.options = {**sae.cfg.options, "pretrained": entry.name}
        return sae
