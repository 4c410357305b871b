"""What a person at the terminal sees of the local stack, and where the rest goes.

The emulator warns about every resource type it skips, and the functions write JSON
log lines and metrics: useful when something breaks, noise otherwise. Inside
``terminal_and_log`` everything written to stdout and stderr (from any thread) goes
to a log file, and only what the command says through the returned ``echo``
reaches the terminal. ``--verbose`` keeps everything on the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import click

LOG_FILE = Path(".quitclaim-local") / "local.log"


@contextmanager
def terminal_and_log(log_file: Path, *, verbose: bool) -> Iterator[Callable[[str], None]]:
    """Send stdout/stderr to ``log_file`` (appended); yield an echo to the real terminal."""
    terminal = sys.stdout

    def echo(text: str = "") -> None:
        click.echo(text, file=terminal)

    if verbose:
        yield echo
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with (
        log_file.open("a", encoding="utf-8") as log,
        redirect_stdout(log),
        redirect_stderr(log),
    ):
        yield echo
