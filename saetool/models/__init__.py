"""Model backends and named models: load a model, run it with TransformerLens-named hooks."""

from saetool.models.base import HookedModel, ModelBackendType
from saetool.models.hooks import HookPoint, hooks_from_layers, parse_hooks
from saetool.models.registry import load_model, resolve_model
from saetool.models.source import ModelSource, ModelSpec

__all__ = [
    "HookPoint",
    "HookedModel",
    "ModelBackendType",
    "ModelSource",
    "ModelSpec",
    "hooks_from_layers",
    "load_model",
    "parse_hooks",
    "resolve_model",
]
