"""Progress of the long commands (verify, report, export, migrate): on a terminal, quiet in pipes.

Drawn with `rich` on stderr, so stdout keeps only the command's answer (a verdict, JSON). Shown
only when stderr is a terminal, or when the caller forces it (`verify --progress`): a command
in a pipe, a cron job or a test prints no bars and no escape codes. Without `rich` (it comes
with the `audit` and `server` extras; `verify --offline` runs without any) the work simply
runs without a bar.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from rich.progress import TaskID

Update = Callable[[str, int, int], None]
"""A progress callback: stage name, items done, items in the stage."""

REFRESHES_PER_SECOND: Final = 4
"""Redraws a second: enough to look alive, few enough not to slow a verification."""


def on_terminal() -> bool:
    """Whether stderr is a terminal someone is watching."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


@contextmanager
def progress_bar(force: bool = False) -> Iterator[Update | None]:
    """A callback that draws one bar per stage, or None when nothing should be drawn."""
    if not (force or on_terminal()):
        yield None
        return
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    except ImportError:
        yield None
        return
    console = Console(stderr=True, force_terminal=force or None)
    with Progress(TextColumn("{task.description:>12}"), BarColumn(), MofNCompleteColumn(),
                  console=console, refresh_per_second=REFRESHES_PER_SECOND) as bars:
        tasks: dict[str, TaskID] = {}
        totals: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage == "done":  # the verifier's last call: every stage is complete
                for name, task in tasks.items():
                    bars.update(task, completed=totals[name])
                return
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            totals[stage] = total
            bars.update(tasks[stage], completed=done, total=total)

        yield update


@contextmanager
def progress_spinner(text: str) -> Iterator[None]:
    """A spinner with `text` and the time taken, for work that cannot count its steps."""
    if not on_terminal():
        yield
        return
    try:
        from rich.console import Console
    except ImportError:
        yield
        return
    with Console(stderr=True).status(text):
        yield
