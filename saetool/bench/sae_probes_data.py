"""Binary probing tasks shipped in the ``sae-probes`` package (MIT; Kantamneni et al., 2025).

``sae-probes`` 0.4.2 ships its 113 binary classification tasks as
``sae_probes/data/cleaned_data/<number>_<tag>.csv.zst`` (columns ``prompt`` and
``target``). This module reads them from the installed package's folder, found
with :func:`importlib.util.find_spec` without importing ``sae_probes`` (which
would import sae-lens and TransformerLens), and decompresses them with
``zstandard`` through pandas. :data:`BUILTIN_TASKS` are the tasks registered
by default (``docs/bench.md`` says why these); a plugin registers any other
file with ``register(SaeProbesTask("92_glue_sst2"))``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Iterator

from saetool.bench.probe_data import ProbeDataset
from saetool.errors import SaetoolError

# Deferred imports: pandas (about 1 s) only when a task's rows are read; registering the tasks (every `bench`
# run) reads nothing.

PACKAGE = "sae_probes"
INSTALL = "pip install --no-deps sae-probes==0.4.2"


def data_folder() -> Path:
    """``sae_probes/data/cleaned_data`` of the installed package (one-line error naming the install command when absent)."""
    try:
        spec = importlib.util.find_spec(PACKAGE)  # locates the package; runs none of it
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(loc) / "data" / "cleaned_data"
        if folder.is_dir():
            return folder
    raise SaetoolError("the sae-probes probe datasets need the sae-probes package, which is not installed",
                       hint=f"install its data with `{INSTALL}` (no dependencies needed), or choose another probing.datasets")


def read_task(stem: str, folder: Path | None = None) -> list[tuple[str, int]]:
    """``(prompt, 0 or 1)`` rows of ``<stem>.csv.zst`` in file order, each prompt once (targets mapped to
    0/1: 1 is ``1``, ``True`` or the later of two sorted string labels). A prompt repeated in the file
    is kept once, so a text cannot land in both train and test; one listed under both targets is dropped."""
    import pandas as pd

    path = (folder or data_folder()) / f"{stem}.csv.zst"
    if not path.is_file():
        raise SaetoolError(f"sae-probes has no task file {path.name} in {path.parent}",
                           hint="name a file of that folder without .csv.zst, e.g. 92_glue_sst2")
    df = pd.read_csv(path, compression="zstd", usecols=["prompt", "target"], keep_default_na=False, dtype=str)
    values = sorted(set(df["target"]))
    if len(values) != 2:
        raise SaetoolError(f"sae-probes task {stem} has {len(values)} target values, not 2", hint="choose a binary task")
    positive = next((v for v in ("1", "True") if v in values), values[1])
    targets: dict[str, int] = {}
    for prompt, target in zip(df["prompt"], df["target"]):
        y = int(target == positive)
        targets[prompt] = y if targets.get(prompt, y) == y else -1
    return [(p, y) for p, y in targets.items() if y >= 0]


class SaeProbesTask(ProbeDataset):
    """One binary task of sae-probes; ``classes`` names its negative and positive class."""

    def __init__(self, stem: str, classes: tuple[str, str] = ("no", "yes"), description: str = "", name: str | None = None) -> None:
        self.stem = stem
        self.classes = classes
        self.name = name or "sae-probes-" + stem.split("_", 1)[-1].replace("_", "-").lower()
        self.description = description or f"sae-probes task {stem}"

    def examples(self) -> Iterator[tuple[str, str]]:
        for text, target in read_task(self.stem):
            yield text, self.classes[target]


#: The tasks registered by default: ``(file stem, (negative, positive) class names, description)``.
BUILTIN_TASKS: tuple[tuple[str, tuple[str, str], str], ...] = (
    ("96_spam_is", ("ham", "spam"), "SMS message: spam or not"),
    ("21_headline_istrump", ("other", "trump"), "news headline: about Trump or not"),
    ("5_hist_fig_ismale", ("female", "male"), "a historical figure's name: man or woman"),
    ("159_code_Python", ("other", "python"), "a GitHub code excerpt: Python or another language"),
    ("157_amazon_5star", ("other", "five-star"), "Amazon review: five stars or not"),
)


def builtin_tasks() -> list[SaeProbesTask]:
    """A :class:`SaeProbesTask` per entry of :data:`BUILTIN_TASKS`."""
    return [SaeProbesTask(stem, classes, f"{description} (sae-probes)") for stem, classes, description in BUILTIN_TASKS]
