"""The sae-probes probe datasets: read from the installed wheel's files, by name in the probing eval."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter

import pytest

from saetool.bench import sae_probes_data
from saetool.bench.probe_data import probe_datasets
from saetool.errors import SaetoolError

needs_sae_probes = pytest.mark.skipif(
    importlib.util.find_spec("sae_probes") is None,
    reason="sae-probes is not installed: pip install --no-deps -r requirements/reference.txt",
)


@needs_sae_probes
def test_builtin_tasks_read_from_the_wheel_without_importing_it():
    """Every built-in task: its file's distinct prompts, both classes named, and sae_probes never imported."""
    folder = sae_probes_data.data_folder()
    assert folder.parts[-3:] == ("sae_probes", "data", "cleaned_data")
    assert len(list(folder.glob("*.csv.zst"))) >= 100
    counts = {}
    for task in probe_datasets([t.name for t in sae_probes_data.builtin_tasks()]):
        rows = list(task.examples())
        assert len({text for text, _ in rows}) == len(rows) and all(text for text, _ in rows)
        by_class = Counter(label for _, label in rows)
        counts[task.name] = tuple(by_class[c] for c in task.classes)
    assert counts == {
        "sae-probes-spam-is": (682, 432),  # 1,494 rows, 1,114 distinct prompts
        "sae-probes-headline-istrump": (2377, 1591),
        "sae-probes-hist-fig-ismale": (1873, 2409),
        "sae-probes-code-python": (2000, 2000),
        "sae-probes-amazon-5star": (999, 1000),
    }
    assert "sae_probes" not in sys.modules


@needs_sae_probes
def test_targets_map_to_the_named_classes():
    """Known rows of files with int, bool and string targets; repeated prompts kept once."""
    spam = sae_probes_data.read_task("96_spam_is")
    assert spam[0][0].startswith("Hey chief, can you give me a bell") and spam[0][1] == 0
    trump = sae_probes_data.read_task("21_headline_istrump")
    assert trump[0] == ("House G.O.P. Signals Break With Trump Over Tariff Threat.", 1)
    assert ("Pope and Russian Orthodox Leader Meet in Historic Step.", 0) in trump
    bait = sae_probes_data.read_task("105_click_bait")  # targets 'clickbait' / 'factual': the later sorted one is 1
    assert bait[0] == ("Revolutionizing Education: The Rise of Online Learning Platforms", 1) and len(bait) == 1601
    with pytest.raises(SaetoolError, match="no task file 999_nothing.csv.zst"):
        sae_probes_data.read_task("999_nothing")


def test_absent_package_says_how_to_get_it_in_one_line(monkeypatch):
    monkeypatch.setattr(sae_probes_data, "PACKAGE", "sae_probes_not_installed_here")
    task = sae_probes_data.builtin_tasks()[0]
    with pytest.raises(SaetoolError) as err:
        list(task.examples())
    line = err.value.one_line()
    assert "\n" not in line and "pip install --no-deps sae-probes==0.4.2" in line


def test_registered_by_name_beside_bbc_news():
    datasets = probe_datasets(["bbc-news"] + [t.name for t in sae_probes_data.builtin_tasks()])
    assert [d.name for d in datasets][0] == "bbc-news" and all(d.name.startswith("sae-probes-") for d in datasets[1:])
    with pytest.raises(SaetoolError, match="sae-probes-"):  # the hint lists them
        probe_datasets(["sae-probes-nothing"])


@needs_sae_probes
def test_probing_eval_runs_on_a_sae_probes_task(tiny_sae, tiny_acts, tmp_path):
    """`--evals probing -O probing.datasets=NAME`: one task per class of that dataset, on its texts."""
    from saetool.bench.api import run_bench
    from saetool.bench.config import BenchConfig

    task = sae_probes_data.builtin_tasks()[0]
    config = BenchConfig(evals=["probing"], random_floor=False,
                         options={"probing": {"datasets": f"bbc-news,{task.name}", "per_class": "10", "context": "16", "ks": "1,2"}})
    r = run_bench([tiny_sae], config, tmp_path / "b.h5", acts=tiny_acts, progress=False).results[("sae", "probing")]
    rows = [t for t in r.details["tasks"] if t["dataset"] == task.name]
    assert sorted(t["class"] for t in rows) == sorted(task.classes)
    assert len(r.details["tasks"]) == 5 + 2 and r.details["test_texts_per_task"][5:] == [6, 6]  # 3 test texts a class
    assert all(0 <= v <= 1 for v in r.metrics.values())
