"""The ``archon`` command line.

Errors of the project (:class:`archon.core.ArchonError`) print one line and
exit with status 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from archon import __version__
from archon.core import ArchonError

app = typer.Typer(
    name="archon",
    help="Inference-time compute scaling: pipelines of sampling, voting, search and verification, "
    "with exact compute accounting.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"archon {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Inference-time compute scaling with exact compute accounting."""
    _state["debug"] = debug


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


@app.command()
def models() -> None:
    """List the embedded models: name, parameters, size on disk, purpose."""
    from archon import models as m

    table = Table(title="Embedded models")
    for col in ("name", "architecture", "parameters", "size on disk", "for"):
        table.add_column(col, justify="right" if col in ("parameters", "size on disk") else "left")
    for name in m.names():
        i = m.info(name)
        table.add_row(i.name, i.architecture, f"{i.params:,}", _human_bytes(i.bytes_on_disk), i.purpose)
    Console().print(table)


@app.command()
def datasets() -> None:
    """List the embedded data sets: name, splits and sizes."""
    from archon import data

    table = Table(title="Embedded data sets")
    for col in ("name", "split", "size", "load with"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for name in data.EMBEDDED:
        for split, n in data.splits(name).items():
            how = (
                f'archon.data.corpus("{name}")'
                if split == data.CORPORA.get(name)
                else f'archon.data.load("{name}", split="{split}")'
            )
            table.add_row(name, split, f"{n:,}", how)
    Console().print(table)


def run() -> None:
    """Console-script entry point: run the app, turning project errors into one line."""
    debug = "--debug" in sys.argv[1:]
    try:
        app()
    except ArchonError as e:
        if debug:
            raise
        Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    run()
