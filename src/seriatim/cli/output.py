"""Printing results: rich tables for people (``--format text``), JSON for programs.

rich is imported on first use, so a command that prints no table does not pay for it.
Tables go to stdout without colour when stdout is not a terminal, so they can be piped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console


def console(stderr: bool = False) -> Console:
    """A rich console on the current stdout (or stderr); made per call, since click's test
    runner swaps the streams between invocations."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, highlight=False, soft_wrap=not stream.isatty())


def print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                title: str | None = None) -> None:
    from rich.table import Table

    table = Table(title=title, box=None, title_justify="left", pad_edge=False,
                  header_style="bold")
    for col in columns:
        numeric = bool(rows) and all(isinstance(r[columns.index(col)], int) for r in rows)
        table.add_column(col, justify="right" if numeric else "left", no_wrap=True)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console().print(table)


def print_kv(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        click.echo(f"{key + ':':<{width + 1}} {value}")


def note(message: str) -> None:
    """A status line for people, on stderr (stdout stays data)."""
    click.echo(message, err=True)
