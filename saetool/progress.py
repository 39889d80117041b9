"""A rich progress bar on stderr that shows tokens per second."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from saetool.console import is_quiet, stderr


@contextmanager
def token_progress(label: str, *, total: int, completed: int = 0, enabled: bool = True, unit: str = "tok") -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a bar with n/total and n/s unless disabled or ``--quiet``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if not enabled or is_quiet():
        yield lambda n: None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr(),
        transient=False,
    )
    with progress:
        task = progress.add_task(label, total=total, completed=completed, rate="")

        def advance(n: int) -> None:
            progress.advance(task, n)
            speed = progress.tasks[task].speed
            if speed:
                progress.update(task, rate=f"{speed:,.0f} {unit}/s")

        yield advance
