"""Tracks read straight from a crosscoder: one latent, one decoder block per layer.

A crosscoder feature writes every hook it was trained on; its decoder norm at
each layer (in the units training saw, :func:`saetool.sae.crosscoder.layer_decoder_norms`)
says where it lives. The feature is present at a layer when that norm is at
least ``min_share`` of its largest norm over the layers; each run of
consecutive layers where it is present is one track (born where the run starts
after the first layer, dead where it stops before the last). A crosscoder
latent never splits or merges: those need separate dictionaries per layer.
Adjacent members are linked with the cosine of the feature's decoder blocks
at the two layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from saetool.analysis.names import require_layer
from saetool.errors import SaetoolError
from saetool.sae.crosscoder import crosscoder_hooks, hook_widths, layer_decoder_norms
from saetool.sae.features import unit_rows
from saetool.track.tracker import Graph, Link, build_tracks

if TYPE_CHECKING:
    from saetool.sae.model import SAE


def crosscoder_graph(sae: "SAE", path: str, *, min_share: float) -> Graph:
    """The :class:`~saetool.track.tracker.Graph` of a crosscoder (hooks sorted by layer)."""
    hooks = crosscoder_hooks(sae.cfg)
    if not hooks or len(hooks) < 2:
        raise SaetoolError(f"{path} is not a crosscoder over two or more hooks", hint="pass one SAE per layer, or a crosscoder trained with train --arch crosscoder --hooks ...")
    layers = [require_layer(h, what=f"the crosscoder {path}") for h in hooks]
    order = sorted(range(len(hooks)), key=lambda i: layers[i])
    norms = layer_decoder_norms(sae).numpy()[:, order]  # [d_sae, n_layers]
    blocks = [b.detach().double() for b in sae.W_dec.split(hook_widths(sae.cfg), dim=1)]
    blocks = [unit_rows(blocks[i]) for i in order]
    present = norms >= min_share * norms.max(axis=1, keepdims=True)
    present &= norms.max(axis=1, keepdims=True) > 0
    n = len(order)
    live = [np.nonzero(present[:, i])[0] for i in range(n)]
    links = []
    for i in range(n - 1):
        both = np.nonzero(present[:, i] & present[:, i + 1])[0]
        cos = (blocks[i][both] * blocks[i + 1][both]).sum(dim=1).numpy() if both.size else np.zeros(0)
        links.append([Link(i, int(f), int(f), float(c), float("nan")) for f, c in zip(both, cos)])
    tracks, events = build_tracks(live, links)
    with torch.no_grad():
        for t in tracks:
            t.score = float(norms[t.features[0], t.start : t.end + 1].sum())
    widths = [sae.cfg.d_sae] * n
    return Graph([layers[i] for i in order], [hooks[i] for i in order], widths, live, links, tracks, events)
