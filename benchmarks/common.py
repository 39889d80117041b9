"""Helpers shared by saetool's benchmark scripts.

Every benchmark follows the same house rules, and this module is where they live:

* measure the things being compared side by side in ONE process run, repeated
  several times and *interleaved* (the order rotates every round), and report
  medians and ratios -- these machines are noisy, and a single timing or two
  timings taken minutes apart mean little;
* record the machine (CPU count, CPU model, torch version and threads) and the
  exact command next to the numbers;
* write the result into ``docs/benchmarks.md`` as one ``## <name>`` section that
  the script rewrites in place, leaving the other sections alone.

Nothing here imports torch or saetool at module level, so a benchmark can set
environment variables (offline mode, thread counts) before those are imported.
Never put timing assertions into tests: benchmarks report, they do not gate.
"""

from __future__ import annotations

import datetime as _dt
import gc
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

#: Environment that keeps transformers / datasets / huggingface_hub off the network.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

#: The header a fresh ``docs/benchmarks.md`` starts with.
DOC_HEADER = """# Benchmarks

Measured speed and memory of saetool's stages, each next to the baselines it
should be judged against. Every section below is written by a script in
`benchmarks/` (see `benchmarks/README.md`) and rewritten in place when that
script runs again; it records the exact command, the machine and the date.
Numbers from different machines, or from different runs, are not comparable:
compare the ratios inside one section, which were measured side by side in one
run (interleaved repeats, medians).
"""


def run_in_temp_dir(prefix: str, parent: str | None, run: Callable[[Path], int]) -> int:
    """``run(folder)`` with a fresh temporary folder that is removed afterwards,
    also when the benchmark is stopped with SIGTERM."""
    import shutil
    import signal
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))

    def on_term(signum, frame):
        # Clean up and leave at once: an exception raised here could land in a __del__ and be ignored.
        shutil.rmtree(folder, ignore_errors=True)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        return run(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def set_offline_env() -> None:
    """Keep Hugging Face libraries offline (call before importing them)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def log(message: str) -> None:
    """Progress messages go to stderr; stdout is kept for the result."""
    print(message, file=sys.stderr, flush=True)


# -- timing ---------------------------------------------------------------------------


@dataclass
class Case:
    """One thing to time.

    ``run(state)`` is timed; ``setup()`` (its return value is the state) and
    ``teardown(state, result)`` are not. ``teardown`` is where a case checks
    and deletes what ``run`` wrote; what it returns is kept with the
    measurement (``Timing.extras``).
    """

    name: str
    run: Callable[[Any], Any]
    setup: Callable[[], Any] = lambda: None
    teardown: Callable[[Any, Any], Any] = lambda state, result: None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Timing:
    """The accepted measurements of one case, one per round.

    ``seconds`` is wall-clock time, ``cpu_seconds`` this process's CPU time
    (all threads), ``interference`` the share of the machine's CPU capacity
    that OTHER processes used during the measurement (see :func:`time_call`).
    ``discarded`` keeps the measurements that were repeated because of
    interference, as ``(seconds, interference)``.
    """

    name: str
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    interference: list[float] = field(default_factory=list)
    extras: list[Any] = field(default_factory=list)
    discarded: list[tuple[float, float]] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_seconds)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the repeats were."""
        return (max(self.seconds) - min(self.seconds)) / self.median if self.seconds else float("nan")


@dataclass
class Measurement:
    wall_s: float
    cpu_s: float
    interference: float  # other processes' CPU time / (wall time x CPUs); nan where unknown
    result: Any = None
    extra: Any = None


def _machine_busy_seconds() -> float | None:
    """CPU seconds all processes have used since boot (Linux ``/proc/stat``), or None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    values = [int(v) for v in fields[1:9]]
    busy = values[0] + values[1] + values[2] + values[5] + values[6] + values[7]
    return busy / os.sysconf("SC_CLK_TCK")


def time_call(fn: Callable[[], Any]) -> Measurement:
    """Wall time, this process's CPU time and the interference of one call.

    Interference is the CPU time other processes used meanwhile (the machine's
    busy time from ``/proc/stat`` minus this process's CPU time), as a share of
    the machine's capacity over the call (wall time x usable CPUs). Near 0 on an
    otherwise idle machine; 0.5 on 2 cores means another process kept one core
    busy, and the wall time of that measurement is not to be trusted.
    """
    gc.collect()
    busy0 = _machine_busy_seconds()
    cpu0 = time.process_time()
    start = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    busy1 = _machine_busy_seconds()
    interference = float("nan")
    if busy0 is not None and busy1 is not None and wall > 0:
        n_cpus = os.cpu_count() or 1  # /proc/stat counts every online CPU
        interference = max(0.0, (busy1 - busy0) - cpu) / (wall * n_cpus)
    return Measurement(wall, cpu, interference, result)


def wait_for_quiet(max_share: float, max_wait_s: float, probe_s: float = 1.0) -> float:
    """Sleep until other processes use at most ``max_share`` of the CPUs over a
    ``probe_s`` window, or ``max_wait_s`` has passed; return the last share seen
    (nan where ``/proc/stat`` is unavailable)."""
    deadline = time.monotonic() + max_wait_s
    share = float("nan")
    while True:
        busy0, cpu0 = _machine_busy_seconds(), time.process_time()
        time.sleep(probe_s)
        busy1, cpu1 = _machine_busy_seconds(), time.process_time()
        if busy0 is None or busy1 is None:
            return share
        share = max(0.0, (busy1 - busy0) - (cpu1 - cpu0)) / (probe_s * (os.cpu_count() or 1))
        if share <= max_share or time.monotonic() >= deadline:
            return share


def time_once(fn: Callable[[], Any]) -> tuple[float, Any]:
    """``(wall seconds, result)`` of one call, by ``time.perf_counter``."""
    m = time_call(fn)
    return m.wall_s, m.result


def run_interleaved(
    cases: Sequence[Case],
    repeats: int,
    *,
    max_interference: float | None = None,
    retries: int = 0,
    quiet_wait_s: float = 60.0,
    verbose: bool = True,
) -> dict[str, Timing]:
    """Time every case ``repeats`` times, one round at a time.

    Round ``r`` runs the cases in the list's order rotated by ``r``, so no case
    always runs first (warm caches) or right after an expensive one. With
    ``max_interference``, a measurement during which other processes used more
    than that share of the CPUs is repeated up to ``retries`` times, each time
    after waiting (at most ``quiet_wait_s``) for the other processes to calm
    down; the least disturbed attempt is kept and the others are recorded in
    ``Timing.discarded``, so nothing is hidden.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    timings = {case.name: Timing(case.name) for case in cases}
    n = len(cases)
    for r in range(repeats):
        order = [cases[(r + i) % n] for i in range(n)]
        for case in order:
            attempts: list[Measurement] = []
            for attempt in range(retries + 1):
                if attempt and max_interference is not None:
                    wait_for_quiet(max_interference, quiet_wait_s)
                state = case.setup()
                m = time_call(lambda: case.run(state))
                m.extra = case.teardown(state, m.result)
                m.result = None
                attempts.append(m)
                if verbose:
                    again = " (repeat)" if attempt else ""
                    log(f"  round {r + 1}/{repeats}  {case.name:<56} {m.wall_s:8.3f} s wall {m.cpu_s:8.3f} s cpu  others {m.interference:5.1%}{again}")
                if max_interference is None or not (m.interference > max_interference):
                    break
            best = min(attempts, key=lambda a: (a.interference if a.interference == a.interference else 0.0, a.wall_s))
            t = timings[case.name]
            t.seconds.append(best.wall_s)
            t.cpu_seconds.append(best.cpu_s)
            t.interference.append(best.interference)
            t.extras.append(best.extra)
            t.discarded.extend((a.wall_s, a.interference) for a in attempts if a is not best)
    return timings


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


# -- memory ---------------------------------------------------------------------------


@dataclass
class ProcessResult:
    command: list[str]
    returncode: int
    wall_s: float
    peak_rss_bytes: int
    output_tail: str


# Runs the command as ITS child and reports that grandchild's rusage. The detour
# matters: a process's ru_maxrss includes the memory of the process it was forked
# (or vforked) from, up to the moment it execs, so a child started directly by a
# benchmark that already holds a model would report the benchmark's own peak.
# Forked from this small helper instead, the command's peak is its own.
_RSS_HELPER = r"""
import json, os, subprocess, sys, threading, time
out, timeout, cmd = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
start = time.perf_counter()
proc = subprocess.Popen(cmd)
timer = threading.Timer(timeout, proc.kill) if timeout > 0 else None
if timer:
    timer.start()
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
if timer:
    timer.cancel()
proc.returncode = os.waitstatus_to_exitcode(status)
with open(out, "w") as fh:
    json.dump({"returncode": proc.returncode, "ru_maxrss": usage.ru_maxrss, "wall_s": wall}, fh)
"""


def run_peak_rss(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout_s: float | None = None,
) -> ProcessResult:
    """Run ``command`` and return its wall time and peak resident set size.

    The peak is the kernel's ``ru_maxrss`` of exactly that process (from
    ``wait4``), not a polled estimate, so short spikes are not missed; it does
    not include processes the command starts in turn. The command is started
    from a small helper process so that this (possibly large) process's memory
    is not counted (see ``_RSS_HELPER``). Wall time is measured around the
    command alone and includes its start-up.
    """
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rusage.json"
        log_path = Path(tmp) / "output.txt"
        with open(log_path, "wb") as log_fh:
            helper = [sys.executable, "-c", _RSS_HELPER, str(report), str(timeout_s or 0), *command]
            subprocess.run(helper, env=dict(env) if env is not None else None, cwd=cwd, stdout=log_fh, stderr=subprocess.STDOUT, check=False)
        tail = log_path.read_bytes()[-4000:].decode(errors="replace")
        if not report.exists():
            return ProcessResult(list(command), -1, float("nan"), 0, tail)
        data = json.loads(report.read_text())
    # Linux reports kilobytes, macOS bytes.
    peak = data["ru_maxrss"] if sys.platform == "darwin" else data["ru_maxrss"] * 1024
    return ProcessResult(list(command), int(data["returncode"]), float(data["wall_s"]), int(peak), tail)


# -- machine --------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info(packages: Sequence[str] = ("torch",)) -> dict[str, Any]:
    """What the numbers were measured on (call after torch is importable)."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_total_bytes": _mem_total(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: package_version(name) for name in packages},
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
    except ImportError:
        pass
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def machine_line(info: Mapping[str, Any]) -> str:
    """One markdown line describing the machine."""
    pkgs = ", ".join(f"{name} {ver}" for name, ver in info.get("packages", {}).items() if ver)
    mem = info.get("mem_total_bytes")
    parts = [
        f"{info['cpus_usable']} CPU cores usable ({info['cpu_count']} online, {info['cpu_model']})",
        f"{human_bytes(mem)} RAM" if mem else None,
        f"torch threads {info['torch_threads']}" if "torch_threads" in info else None,
        "no GPU used" if not info.get("cuda") else "CUDA available (not used)",
        f"Python {info['python']}",
        pkgs,
        info["platform"],
    ]
    return "; ".join(p for p in parts if p)


# -- formatting -----------------------------------------------------------------------


def human_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is one of ``l``/``r``/``c`` per column."""
    align = align or "l" * len(headers)
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def command_line(script: str | Path, argv: Sequence[str], python: str = ".venv/bin/python") -> str:
    """The command that reruns ``script`` with ``argv``, relative to the current folder."""
    script = Path(script).resolve()
    try:
        shown = script.relative_to(Path.cwd())
    except ValueError:
        shown = script
    return shlex.join([python, str(shown), *argv])


# -- docs/benchmarks.md -----------------------------------------------------------


def section_intro(script: str | Path, argv: Sequence[str], info: Mapping[str, Any], seconds: float) -> list[str]:
    """The opening lines of a generated section: who wrote it when, the command that reruns it, the machine."""
    return [
        f"_Written by `benchmarks/{Path(script).name}` on {info['date']} in {seconds / 60:.0f} min; rerun it to refresh this section._",
        "",
        "Reproduce (from the repository root):",
        "",
        "```bash",
        command_line(script, argv),
        "```",
        "",
        f"Machine: {machine_line(info)}",
        "",
    ]


def update_section(path: str | Path, heading: str, body: str, *, header: str = DOC_HEADER) -> Path:
    """Replace the ``heading`` section (e.g. ``"## extract"``) of ``path`` with ``body``.

    The section runs from its heading line to the next heading of the same or
    a higher level (outside code fences), or the end of the file. A missing
    section is appended; a missing file starts with ``header``. Everything
    else in the file is kept byte for byte.
    """
    path = Path(path)
    level = len(heading) - len(heading.lstrip("#"))
    if level < 1 or not heading[level:].startswith(" "):
        raise ValueError(f"heading must look like '## name', got {heading!r}")
    text = path.read_text() if path.exists() else header.rstrip("\n") + "\n"
    lines = text.splitlines(keepends=True)
    section = [heading + "\n", "\n", body.strip("\n") + "\n"]

    start = end = None
    in_fence = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("```") or stripped.startswith("~~~"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if start is None:
            if stripped == heading.strip():
                start = i
            continue
        hashes = len(stripped) - len(stripped.lstrip("#"))
        if 1 <= hashes <= level and stripped[hashes:hashes + 1] == " ":
            end = i
            break
    if start is None:
        new = lines + (["\n"] if lines and lines[-1].strip() else []) + section
    else:
        end = len(lines) if end is None else end
        tail = lines[end:]
        new = lines[:start] + section + (["\n"] if tail else []) + tail
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(new))
    return path
