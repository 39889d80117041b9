"""Built-in model backends and embedded models."""

from __future__ import annotations

from saetool.hookspecs import hookimpl

# Deferred imports: plugins load every built-in (`saetool --help` included); each hook imports only what it registers, so asking for one category loads no other.


@hookimpl
def register_model_backends(register):
    from saetool.models.hf_backend import TransformersBackend
    from saetool.models.tl_backend import TransformerLensBackend

    register(TransformersBackend())
    register(TransformerLensBackend())


@hookimpl
def register_models(register):
    from saetool.models.embedded import EMBEDDED_MODELS

    for spec in EMBEDDED_MODELS:
        register(spec)
