"""The one progress bar every stage draws on stderr: n of total, percent, tokens per second."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Protocol

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from saetool.console import is_quiet, stderr


class Advance(Protocol):
    def __call__(self, n: int = 1, *, note: str | None = None) -> None: ...


@contextmanager
def token_progress(label: str, *, total: int, completed: int = 0, enabled: bool = True, unit: str = "tok", per_step: int = 1) -> Iterator[Advance]:
    """Yield ``advance(n=1, note=None)``: moves the bar n steps (each ``per_step``
    ``unit``s, for the rate) and shows ``note`` (e.g. a loss) after the rate.
    Nothing is drawn when disabled or under ``--quiet``."""
    if not enabled or is_quiet():
        yield lambda n=1, *, note=None: None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr(),
        transient=False,
    )
    with progress:
        task = progress.add_task(label, total=total, completed=completed, rate="", note="")

        def advance(n: int = 1, *, note: str | None = None) -> None:
            fields = {} if note is None else {"note": note}
            speed = progress.tasks[task].speed
            if speed:
                fields["rate"] = f"{speed * per_step:,.0f} {unit}/s"
            progress.update(task, advance=n, **fields)

        yield advance
