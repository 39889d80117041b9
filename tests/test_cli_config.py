"""Options generated from config dataclasses (saetool/cli/config_options.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
import typer

from helpers import run_cli
from saetool.cli.config_options import Group, flag_text, from_config
from saetool.fielddocs import field_docs
from saetool.errors import ConfigError
from saetool.extract.api import ExtractConfig
from saetool.train.config import SampleSettings, TrainConfig


def _options(command) -> dict:
    """``{flag: click option}`` of a typer command function."""
    click_command = typer.main.get_command_from_info(typer.models.CommandInfo(callback=command), pretty_exceptions_short=True, rich_markup_mode=None)
    return {decl: p for p in click_command.params for decl in p.opts}


@pytest.mark.parametrize("module, config, skipped", [
    ("saetool.cli.train_cmd", TrainConfig, {"target_l0", "normalize_inputs", "samples", "targets", "options"}),
    ("saetool.cli.extract_cmd", ExtractConfig, {"extra"}),
])
def test_every_field_is_an_option_with_the_field_default_and_docstring(module, config, skipped):
    import importlib

    command = getattr(importlib.import_module(module), module.split(".")[-1].removesuffix("_cmd"))
    options = _options(command)
    names = command.flag_names
    docs = field_docs(config)
    for f in dataclasses.fields(config):
        if f.name in skipped:
            continue
        option = options[names[f.name]]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert option.default == default, f.name
        assert option.help.rstrip(".") in docs[f.name] or "`" in docs[f.name], f.name
        assert "`" not in option.help, option.help  # every backticked setting became its flag


def test_renamed_and_nested_fields_keep_their_flags():
    from saetool.cli.train_cmd import train

    names = train.flag_names
    assert names["sparsity_coeff"] == "--l1-coeff"
    assert names["samples.per_feature"] == "--samples-per-feature"
    assert names["targets.scaled_mse"] == "--target-mse"
    options = _options(train)
    assert options["-b"] is options["--batch-size"] and options["-a"] is options["--arch"]
    assert options["--sample-every"].default == SampleSettings().every
    assert options["--target-fvu"].default is None  # None: the --checklist's value
    assert "--expansion-factor" in options and "instead of --d-sae" in options["--expansion-factor"].help


def test_library_errors_name_fields_and_the_cli_names_flags(tmp_path):
    with pytest.raises(ConfigError, match="`sparsity_coeff` must be a non-negative number"):
        TrainConfig(sparsity_coeff=-1.0).validate()
    with pytest.raises(ConfigError, match="`samples.every` must be at least 1"):
        TrainConfig(samples=SampleSettings(every=0)).validate()
    with pytest.raises(ConfigError, match="`aux_dead_tokens` must be at least 1"):
        TrainConfig(aux_dead_tokens=0).validate()
    with pytest.raises(ConfigError, match="`encoder_lr_ratio` must be a non-negative number"):
        TrainConfig(encoder_lr_ratio=-0.5).validate()
    result = run_cli("train", "missing.h5", "--l1-coeff", "-1", cwd=tmp_path)
    assert result.returncode == 2
    assert "error: --l1-coeff must be a non-negative number (got -1.0)" in result.stderr
    result = run_cli("train", "missing.h5", "--collect-samples", "--sample-every", "0", cwd=tmp_path)
    assert "error: --sample-every must be at least 1 (got 0)" in result.stderr
    result = run_cli("train", "missing.h5", "--encoder-lr-ratio", "-1", cwd=tmp_path)
    assert result.returncode == 2 and "error: --encoder-lr-ratio must be a non-negative number (got -1.0)" in result.stderr
    result = run_cli("train", "missing.h5", "--aux-dead-tokens", "0", cwd=tmp_path)
    assert result.returncode == 2 and "error: --aux-dead-tokens must be at least 1 (got 0)" in result.stderr
    result = run_cli("extract", "--per-line", "--include-special", cwd=tmp_path)
    assert result.returncode == 2
    assert "error: --per-line pads each line with a special token, so it needs --exclude-special; drop --include-special" in result.stderr


def test_flag_text_replaces_only_known_backticked_names():
    names = {"lr": "--lr", "samples.every": "--sample-every"}
    assert flag_text("`lr` and `samples.every`, not lr or `other`", names) == "--lr and --sample-every, not lr or `other`"


def test_a_field_without_docstring_or_with_an_unknown_type_is_refused():
    @dataclass
    class NoDoc:
        a: int = 1

    @dataclass
    class OddType:
        a: dict = dataclasses.field(default_factory=dict)
        """A mapping."""

    def command(*, config: dict) -> None:
        """A command."""

    with pytest.raises(TypeError, match="has no docstring"):
        from_config(Group(NoDoc))(command)
    with pytest.raises(TypeError, match="no command-line type"):
        from_config(Group(OddType))(command)


def test_generated_values_reach_the_command_converted():
    @dataclass
    class Settings:
        names: list[str] | None = None
        """Comma-separated names."""
        size: int = 3
        """How many."""

    seen = {}

    @from_config(Group(Settings, short={"size": "-s"}))
    def command(*, config: dict) -> None:
        """A command."""
        seen.update(config)
        if config["size"] < 0:
            raise ConfigError("`size` must be 0 or more")

    app = typer.Typer()
    app.command()(command)
    from typer.testing import CliRunner

    assert CliRunner().invoke(app, ["--names", "a,b", "-s", "5"]).exit_code == 0
    assert seen == {"names": ["a", "b"], "size": 5}
    result = CliRunner().invoke(app, ["-s", "-1"])
    assert str(result.exception) == "--size must be 0 or more"
