"""Architecture options: each architecture's dataclass, --arch-option KEY=VALUE, and `saetool plugins`."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from helpers import assert_clean_error, run_cli
from saetool.errors import ConfigError
from saetool.train import TrainConfig
from saetool.train.arch_options import convert_options, describe
from saetool.train.architectures import (
    BatchTopKOptions,
    JumpReLUArchitecture,
    MatryoshkaArchitecture,
    MatryoshkaOptions,
    ReLUArchitecture,
    SAEArchitecture,
)


def test_text_values_become_the_fields_types():
    given = {"prefixes": "8, 16,64", "threshold_lr": "0.05", "dense": "true"}
    assert convert_options(MatryoshkaOptions, given, "matryoshka") == {"prefixes": [8, 16, 64], "threshold_lr": 0.05, "dense": True}
    assert convert_options(MatryoshkaOptions, {"prefixes": [8, 16], "dense": False}, "matryoshka") == {"prefixes": [8, 16], "dense": False}
    assert MatryoshkaArchitecture().options(TrainConfig(options={"prefixes": "12,24"}), 96) == {"prefixes": [12, 24, 96]}
    assert MatryoshkaArchitecture().options(TrainConfig(), 64) == {"prefixes": [4, 8, 16, 32, 64]}


@pytest.mark.parametrize(("cls", "given", "message"), [
    (MatryoshkaOptions, {"prefix": "8"}, "unknown `options` key 'prefix' for architecture 'x'; did you mean 'prefixes'?"),
    (BatchTopKOptions, {"zzz": "1"}, "unknown `options` key 'zzz' for architecture 'x'; x's options: dense, threshold_lr"),
    (BatchTopKOptions, {"threshold_lr": "fast"}, "`options` threshold_lr='fast' is not a float"),
    (BatchTopKOptions, {"threshold_lr": "nan"}, "`options` threshold_lr='nan' is not a float"),
    (BatchTopKOptions, {"dense": "maybe"}, "`options` dense='maybe' is not a bool"),
    (MatryoshkaOptions, {"prefixes": "8,x"}, "`options` prefixes='8,x' is not comma-separated ints"),
])
def test_bad_keys_and_values_are_one_line_errors(cls, given, message):
    with pytest.raises(ConfigError) as info:
        convert_options(cls, given, "x")
    assert info.value.one_line() == message


def test_an_architecture_without_options_refuses_any_and_an_undeclared_plugin_passes_them_on():
    with pytest.raises(ConfigError, match="relu takes none"):
        ReLUArchitecture().check_options({"dense": "1"})

    class Legacy(SAEArchitecture):  # a plugin written before options_class: its options reach SAEConfig.options as given
        name = "legacy"

    assert Legacy().options(TrainConfig(options={"anything": "1"}), 8) == {"anything": "1"}


def test_stored_options_read_back_with_defaults():
    from saetool.sae.config import SAEConfig

    cfg = SAEConfig(arch="jumprelu", d_in=4, d_sae=8, hook="h", activation="jumprelu", options={"bandwidth": 0.1, "other": 1})
    settings = JumpReLUArchitecture().settings(cfg)
    assert (settings.bandwidth, settings.init_threshold, settings.init_l0) == (0.1, 0.01, 64)


def test_plugin_options_are_described():
    @dataclass
    class Opts:
        width: int = 3
        """How wide."""

    assert describe(Opts) == [{"name": "width", "type": "int", "default": 3, "help": "How wide."}]
    assert describe(None) == []


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    from saetool.train.synthetic import sparse_dictionary_data, write_activations

    x, _ = sparse_dictionary_data(1000, 16, 32, active=3, seed=2)
    return write_activations(tmp_path_factory.mktemp("small") / "small.h5", {"blocks.0.hook_resid_post": x}, context_size=20)


def test_arch_option_and_the_prefixes_alias_reach_the_sae(tmp_path, small_file):
    common = ("train", str(small_file), "--arch", "matryoshka", "--d-sae", "32", "--k", "4", "--batch-size", "64", "--steps", "3", "--checkpoint-every", "3")
    for extra, name in ((("--arch-option", "prefixes=8,16", "--arch-option", "threshold_lr=0.5"), "a.h5"), (("--prefixes", "8,16", "--arch-option", "threshold_lr=0.5"), "b.h5")):
        proc = run_cli(*common, *extra, "-o", str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr
        from saetool.sae.io import load_sae

        assert load_sae(tmp_path / name).cfg.options == {"prefixes": [8, 16, 32], "threshold_lr": 0.5}


@pytest.mark.parametrize(("extra", "needle"), [
    (("--arch", "matryoshka", "--arch-option", "prefix=8"), "error: unknown --arch-option key 'prefix' for architecture 'matryoshka'; did you mean 'prefixes'?"),
    (("--arch", "batchtopk", "--arch-option", "threshold_lr=fast"), "error: --arch-option threshold_lr='fast' is not a float"),
    (("--arch", "topk", "--arch-option", "dense"), "error: --arch-option must look like KEY=VALUE (got 'dense'); e.g. --arch-option prefixes=256,1024"),
    (("--arch", "matryoshka", "--prefixes", "8", "--arch-option", "prefixes=8"), "error: give --prefixes or --arch-option prefixes=..., not both"),
])
def test_bad_arch_options_fail_before_any_file_is_read(tmp_path, extra, needle):
    proc = run_cli("train", str(tmp_path / "missing.h5"), "--k", "4", *extra, "-o", str(tmp_path / "out.h5"))
    assert_clean_error(proc, needle)


def test_plugins_lists_each_architectures_options():
    proc = run_cli("plugins", "--json", env={"SAETOOL_LOAD_PLUGINS": ""})
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    options = rows["saetool.builtins.sae"]["architecture_options"]
    assert [o["name"] for o in options["matryoshka"]] == ["dense", "threshold_lr", "prefixes"]
    assert options["jumprelu"][0] == {"name": "bandwidth", "type": "float", "default": 0.05, "help": "Width of the rectangle kernel of the straight-through threshold gradients."}
    assert "relu" not in options
    table = run_cli("plugins", env={"SAETOOL_LOAD_PLUGINS": "", "COLUMNS": "250"}).stderr
    assert "threshold_lr" in table and "comma-separated ints" in table
