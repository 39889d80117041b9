"""Feature names ``L{layer}-{id}`` and the layer a hook name belongs to."""

from __future__ import annotations

import re

from saetool.errors import SaetoolError
from saetool.models.hooks import layer_of_hook

_FEATURE = re.compile(r"^L(\d+)-(\d+)$")


def require_layer(hook: str, *, what: str = "the SAE") -> int:
    layer = layer_of_hook(hook)
    if layer is None:
        raise SaetoolError(f"cannot tell the layer of {what}'s hook {hook!r} (expected blocks.N.…)", hint="use an SAE trained on a blocks.N hook")
    return layer


def feature_name(layer: int, feature: int) -> str:
    return f"L{int(layer)}-{int(feature)}"


def parse_feature_name(name: str) -> tuple[int, int]:
    """``"L3-17"`` -> ``(3, 17)``; a one-line error for anything else."""
    m = _FEATURE.match(str(name).strip())
    if not m:
        raise SaetoolError(f"{name!r} is not a feature name", hint="write features as L{layer}-{id}, e.g. L3-17")
    return int(m.group(1)), int(m.group(2))
