"""TransformerLens-style hook names: ``blocks.{L}.hook_resid_post`` and friends.

The one place hook names are built (:func:`hook_name`) and read
(:meth:`HookPoint.parse`, :func:`layer_of_hook`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from saetool.errors import ModelError

#: Hook sites saetool understands, as they appear after ``blocks.{L}.``.
SITES: tuple[str, ...] = (
    "hook_resid_pre",
    "hook_resid_mid",
    "hook_resid_post",
    "hook_mlp_out",
    "attn.hook_z",
)

_HOOK_RE = re.compile(r"^blocks\.(\d+)\.(" + "|".join(re.escape(s) for s in SITES) + r")$")
_HOOK_LAYER = re.compile(r"(?:^|\.)blocks\.(\d+)\.")


def hook_name(layer: int, site: str) -> str:
    """``(3, "hook_resid_post")`` -> ``"blocks.3.hook_resid_post"`` (the site is not checked)."""
    return f"blocks.{int(layer)}.{site}"


def layer_of_hook(hook: str) -> int | None:
    """The layer in a hook name (``blocks.3.hook_resid_post`` -> 3), or None when it has no ``blocks.N.``."""
    m = _HOOK_LAYER.search(str(hook))
    return int(m.group(1)) if m else None


@dataclass(frozen=True, order=True)
class HookPoint:
    """A hook site in a given layer."""

    layer: int
    site: str

    @property
    def name(self) -> str:
        return hook_name(self.layer, self.site)

    @classmethod
    def parse(cls, name: str) -> "HookPoint":
        m = _HOOK_RE.match(name.strip())
        if not m:
            raise ModelError(
                f"unknown hook {name!r}",
                hint="use a TransformerLens name such as blocks.3.hook_resid_post; sites: " + ", ".join(SITES),
            )
        return cls(int(m.group(1)), m.group(2))

    def __str__(self) -> str:
        return self.name


def parse_layers(spec: str, n_layers: int) -> list[int]:
    """``"3"``, ``"3,5"``, ``"2-4"``, ``"all"`` or negative indices (``"-1"``) to layer numbers."""
    spec = spec.strip()
    if spec == "all":
        return list(range(n_layers))
    layers: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(-?\d+)(?:-(\d+))?", part)
        if not m:
            raise ModelError(f"cannot read layer list {spec!r}", hint="use e.g. 3, 3,5, 2-4 or all")
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) is not None else start
        if start < 0 and m.group(2) is None:
            start = end = n_layers + start
        for layer in range(start, end + 1):
            if not 0 <= layer < n_layers:
                raise ModelError(f"layer {layer} is out of range", hint=f"this model has layers 0-{n_layers - 1}")
            layers.append(layer)
    if not layers:
        raise ModelError(f"no layers in {spec!r}", hint="use e.g. 3, 3,5, 2-4 or all")
    return sorted(set(layers))


def hooks_from_layers(layers: str, n_layers: int, site: str = "hook_resid_post") -> list[str]:
    if site not in SITES:
        raise ModelError(f"unknown hook site {site!r}", hint="choose one of: " + ", ".join(SITES))
    return [HookPoint(layer, site).name for layer in parse_layers(layers, n_layers)]


def parse_hooks(names: Iterable[str], n_layers: int, supported_sites: Sequence[str] = SITES) -> list[HookPoint]:
    """Parse and validate hook names against a model; sorted, duplicates removed."""
    points = []
    for name in names:
        point = HookPoint.parse(name)
        if not 0 <= point.layer < n_layers:
            raise ModelError(f"hook {name!r}: layer {point.layer} is out of range", hint=f"this model has layers 0-{n_layers - 1}")
        if point.site not in supported_sites:
            raise ModelError(
                f"hook {name!r}: site {point.site} is not supported by this backend",
                hint="supported: " + ", ".join(supported_sites),
            )
        points.append(point)
    if not points:
        raise ModelError("no hooks given", hint="pass --hooks or --layers")
    return sorted(set(points))
