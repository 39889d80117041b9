"""Repository promises: README's quick start is what CI runs; the layout the design asks for."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [next(line for line in b.splitlines() if line.strip() and not line.startswith("#")) for b in blocks]


def test_quick_start_has_two_commands_and_ci_runs_the_second():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "saetool extract" in commands[0]
    assert "pytest" in commands[1]
    assert commands[1] in (REPO / ".ci" / "run").read_text()


def test_top_level_layout():
    for name in ("saetool", "plugins", "examples", "tests", "docs", "benchmarks", ".ci", "pyproject.toml", "CHANGELOG.md", "README.md"):
        assert (REPO / name).exists(), name
    assert (REPO / "saetool" / "hookspecs.py").exists()


def test_ci_installs_the_reference_packages_without_their_pins():
    """sae-bench's and sae-probes' own pins would replace torch and downgrade numpy/pandas: CI installs them --no-deps."""
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install --no-deps -r requirements/reference.txt" in ci
    pins = [line for line in (REPO / "requirements" / "reference.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert pins == ["sae-bench==0.6.0", "sae-probes==0.4.2"]
