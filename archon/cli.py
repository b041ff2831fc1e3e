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
from budgets import BudgetError

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


@app.command()
def cost(
    model: Annotated[str, typer.Argument(help="Embedded model name, model directory or config.json.")],
    prompt: Annotated[int, typer.Option(help="Prompt tokens.")] = 256,
    generate: Annotated[int, typer.Option(help="Tokens generated per completion.")] = 64,
    n: Annotated[int, typer.Option(help="Completions (sharing one prefill).")] = 1,
    cached: Annotated[int, typer.Option(help="Prompt tokens whose KV is reused.")] = 0,
    dtype: Annotated[str | None, typer.Option(help="Number format for latency (default: the model's).")] = None,
) -> None:
    """The FLOPs, bytes and idealized latency of one generate call, on every hardware profile."""
    from budgets import CostModel, load_profiles

    cm = CostModel.from_config(model, dtype=dtype)
    lengths = [generate] * n
    flops = cm.generation_flops(prompt, lengths, cached)
    prefill = cm.prefill_flops(prompt - cached, cached)
    typer.echo(
        f"{model}: {cm.params:,} parameters ({cm.non_embedding_params:,} non-embedding), "
        f"{cm.kv_bytes_per_token:,} KV bytes per token, {cm.facts.dtype}"
    )
    typer.echo(
        f"call: prompt {prompt} ({cached} cached), {n} x {generate} generated -> {flops:.4g} FLOPs "
        f"(prefill {prefill:.4g}, decode {flops - prefill:.4g})"
    )
    table = Table(title="Idealized latency (roofline)")
    for col in ("hardware", "seconds", "tokens/s"):
        table.add_column(col, justify="right" if col != "hardware" else "left")
    for name, p in sorted(load_profiles().items()):
        seconds = p.call_seconds(cm, prompt, lengths, cached)
        table.add_row(name, f"{seconds:.4g}", f"{n * generate / seconds:,.0f}" if seconds else "-")
    Console().print(table)


hardware_app = typer.Typer(help="Hardware profiles for idealized latency.", no_args_is_help=True)
app.add_typer(hardware_app, name="hardware")


@hardware_app.command("list")
def hardware_list() -> None:
    """List the known hardware profiles: peak TFLOP/s by number format, bandwidth, source."""
    from budgets import load_profiles

    table = Table(title="Hardware profiles")
    for col in ("name", "peak TFLOP/s", "bandwidth GB/s", "memory GB", "source"):
        table.add_column(col)
    for name, p in sorted(load_profiles().items()):
        peaks = ", ".join(f"{k} {v:g}" for k, v in p.peak_tflops.items())
        table.add_row(name, peaks, f"{p.bandwidth_gbs:g}", f"{p.memory_gb:g}", p.source)
    Console().print(table)


@hardware_app.command("measure")
def hardware_measure(
    name: Annotated[str, typer.Option(help="Name of the profile to write.")] = "cpu",
    out: Annotated[str | None, typer.Option(help="Profiles file to write (default: the user's).")] = None,
) -> None:
    """Measure this machine (matrix-product FLOP/s, memory bandwidth) and save it as a profile."""
    from budgets.hardware import measure_local, save_profile

    p = measure_local(name)
    where = save_profile(p, out)
    peaks = ", ".join(f"{k} {v:g} TFLOP/s" for k, v in p.peak_tflops.items())
    typer.echo(f"{name}: {peaks}, {p.bandwidth_gbs:g} GB/s -> {where}")


def run() -> None:
    """Console-script entry point: run the app, turning project errors into one line."""
    debug = "--debug" in sys.argv[1:]
    try:
        app()
    except (ArchonError, BudgetError) as e:
        if debug:
            raise
        Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    run()
