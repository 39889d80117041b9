"""``saetool.models.hooks``: hook names are built and read in one place."""

from __future__ import annotations

import pytest

from saetool.errors import ModelError
from saetool.models.hooks import HookPoint, hook_name, layer_of_hook


def test_hook_name_and_layer_round_trip():
    assert hook_name(3, "hook_resid_post") == "blocks.3.hook_resid_post"
    assert hook_name(0, "attn.hook_z") == "blocks.0.attn.hook_z"
    assert HookPoint.parse(hook_name(12, "hook_mlp_out")) == HookPoint(12, "hook_mlp_out")
    assert layer_of_hook(hook_name(7, "hook_resid_mid")) == 7
    assert layer_of_hook("model.blocks.2.ln2.hook_normalized") == 2
    assert layer_of_hook("hook_embed") is None
    assert layer_of_hook("blocks.x.hook_resid_post") is None


def test_unknown_site_is_refused_by_the_parser():
    with pytest.raises(ModelError, match="unknown hook"):
        HookPoint.parse("blocks.3.hook_nope")
