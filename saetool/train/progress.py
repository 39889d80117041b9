"""A live progress bar for training: steps, tokens/s, loss, L0 and dead fraction."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from saetool.console import is_quiet, stderr

Update = Callable[..., None]


@contextmanager
def train_progress(*, total: int, completed: int = 0, batch_size: int = 1, enabled: bool = True) -> Iterator[Update]:
    """Yield ``update(steps=1, loss=None, l0=None, dead=None)``; nothing is drawn when
    disabled or under ``--quiet``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if not enabled or is_quiet():
        yield lambda *a, **k: None
        return
    progress = Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr(),
        transient=False,
    )
    with progress:
        task = progress.add_task("train", total=total, completed=completed, rate="", stats="")

        def update(steps: int = 1, *, loss: float | None = None, l0: float | None = None, dead: float | None = None) -> None:
            fields = {}
            speed = progress.tasks[task].speed
            if speed:
                fields["rate"] = f"{speed * batch_size:,.0f} tok/s"
            if loss is not None:
                fields["stats"] = f"loss {loss:.4g}  L0 {l0:.1f}  dead {100 * (dead or 0):.1f}%"
            progress.update(task, advance=steps, **fields)

        yield update
