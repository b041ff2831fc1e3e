"""The ``archon`` command line.

Errors of the project (:class:`archon.core.ArchonError`) print one line and
exit with status 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any

# the libraries' own progress bars ("Loading weights") would interleave with ours: off, before they load
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import typer
from rich.console import Console as _RichConsole
from rich.markup import escape
from rich.table import Table

from archon import __version__
from archon.core import ArchonError
from budgets import COSTS, DTYPE_BYTES, BudgetError
from budgets.ledger import cost_table


def Console(*, stderr: bool = False) -> _RichConsole:
    """A rich console as wide as the terminal, or 240 columns when the output is not one (a pipe, a log).

    Rich would otherwise wrap trial lines and cut tables at 80 columns (or ``$COLUMNS``) in logs and pipes.
    """
    stream = sys.stderr if stderr else sys.stdout
    return _RichConsole(stderr=stderr, width=None if stream.isatty() else 240)


app = typer.Typer(
    name="archon",
    help="Inference-time compute scaling: pipelines of sampling, voting, search and verification, "
    "with exact compute accounting.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # a docstring's lines join into paragraphs that wrap to the terminal
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
        right = col in ("parameters", "size on disk")
        table.add_column(col, justify="right" if right else "left", no_wrap=col != "for")
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
    from archon.spec import SpecError
    from budgets import CostModel, load_profiles

    for flag, value, low in (
        ("--prompt", prompt, 1),
        ("--generate", generate, 1),
        ("--n", n, 1),
        ("--cached", cached, 0),
    ):
        if value < low:
            raise SpecError(f"{flag}: must be at least {low}, got {value}")
    if cached > prompt:
        raise SpecError(f"--cached: must be at most --prompt ({prompt}), got {cached}")
    if dtype is not None and dtype not in DTYPE_BYTES:
        raise SpecError(f"--dtype: unknown number format {dtype!r}; one of {', '.join(DTYPE_BYTES)}")
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


@app.command()
def ops(
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as one JSON object.")] = False,
) -> None:
    """List every operator (built-in and plugins') with its summary and params, and every resource kind."""
    import json

    from archon import plugins
    from archon.core.registry import ENGINE_KINDS, OPERATORS, RETRIEVER_KINDS, VERIFIER_KINDS

    plugins.load()
    listing = {
        "operators": [_op_entry(OPERATORS.get(name)) for name in OPERATORS.names()],
        "kinds": {
            what: [{"kind": k.name, "summary": k.summary, "module": k.module} for k in map(reg.get, reg.names())]
            for what, reg in (("verifiers", VERIFIER_KINDS), ("engines", ENGINE_KINDS), ("retrievers", RETRIEVER_KINDS))
        },
    }
    if as_json:
        typer.echo(json.dumps(listing, indent=1))
        return
    table = Table(title="operators")
    for col in ("op", "summary", "params"):
        table.add_column(col)
    for op in listing["operators"]:
        params = ", ".join(f"{p['name']}{'' if p['required'] else '=' + _short(p['default'])}" for p in op["params"])
        table.add_row(op["name"], op["summary"], params)
    Console().print(table)
    for what, kinds in listing["kinds"].items():
        names = ", ".join(k["kind"] for k in kinds) or "none"
        Console().print(f"[bold]{what[:-1]} kinds:[/] {names}", highlight=False)


def _op_entry(op: Any) -> dict[str, Any]:
    """One operator of ``archon ops``: name, summary, module, params (type, default, reference, cost growth)."""
    from archon.core.operators import Ref

    params = []
    for name, field in op.params.model_fields.items():
        ref = next((m for m in field.metadata if isinstance(m, Ref)), None)
        params.append(
            {
                "name": name,
                "type": _type_name(field.annotation),
                "required": field.is_required(),
                "default": None if field.is_required() else field.get_default(call_default_factory=True),
                "reference": ref.kind if ref else None,
                "cost_growth": op.params.cost_growth.get(name),
                "description": field.description,
            }
        )
    return {"name": op.name, "summary": op.summary, "module": op.module, "params": params}


def _type_name(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


@app.command()
def schema() -> None:
    """Print the JSON Schema of pipeline specs (for editors' completion and checking)."""
    import json

    from archon.spec import Spec

    typer.echo(json.dumps(Spec.model_json_schema(), indent=2))


@app.command()
def validate(spec: Annotated[str, typer.Argument(help="The spec file (YAML or JSON).")]) -> None:
    """Check a spec: prints ok, or one line per problem and exits 1."""
    from archon.spec import load_spec, problems

    found = problems(load_spec(spec))
    if not found:
        typer.echo("ok")
        return
    for line in found:
        typer.echo(f"{spec}: {line}", err=True)
    raise typer.Exit(1)


@app.command()
def graph(
    spec: Annotated[str, typer.Argument(help="The spec file (YAML or JSON).")],
    output: Annotated[str, typer.Option("-o", "--output", help="File to write: .svg, .mmd (Mermaid) or .png.")],
) -> None:
    """Draw the pipeline DAG of a spec."""
    from archon.rundir import check_writable
    from archon.spec import SpecError, compile_pipeline, load_spec
    from archon.spec.draw import draw

    check_writable("--output", output, kind="file")
    s = load_spec(spec)
    try:
        written = draw(s, compile_pipeline(s), output)
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    typer.echo(f"wrote {written}")


@app.command("run")
def run_spec(
    spec: Annotated[str, typer.Argument(help="The spec file (YAML or JSON).")],
    dataset: Annotated[str | None, typer.Option(help="Data set name or JSONL path (default: the spec's).")] = None,
    split: Annotated[str | None, typer.Option(help="Split of an embedded data set (default: the spec's).")] = None,
    limit: Annotated[int | None, typer.Option(help="Run only the first N problems.")] = None,
    out: Annotated[str | None, typer.Option(help="Run directory (results.jsonl, summary.json).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Start over in an --out that holds results.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    seed: Annotated[int, typer.Option(help="Run seed (per problem and node seeds derive from it).")] = 0,
) -> None:
    """Run a pipeline spec on a data set: accuracy, coverage and cost.

    Engines and verifiers are built before the first problem runs, so a configuration that cannot work
    fails at once, in one line.

    A run in which problems failed says how many, and the first one, and exits with status 1; so does a
    run in which the budget let no problem get an answer. Calls the budget refused are counted and the
    first one said. Ctrl-C says what was saved and exits with status 130.
    """
    import asyncio
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from archon.runtime import Runner
    from archon.spec import SpecError, load_spec

    s = load_spec(spec)
    name = _dataset_of(spec, s, dataset, split, limit).name
    problems_ = _problems(spec, s, dataset, split, limit)
    if resume and not out:
        raise SpecError("--resume needs --out (the run directory to continue)")
    if out:
        from archon.rundir import check_writable

        check_writable("--out", out)
    try:
        runner = Runner(s, seed=seed)
        runner.prepare()
    except SpecError as exc:
        raise SpecError(f"{spec}: {exc}") from None
    console = Console(stderr=True)
    try:
        columns = (TextColumn("problems"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"))
        with Progress(*columns, TimeRemainingColumn(), console=console, transient=True, disable=as_json) as bar:
            task = bar.add_task("", total=len(problems_))
            so_far = {"flops": 0.0, "errors": 0, "done": 0}

            def advance(record: dict[str, Any]) -> None:  # one status line: done, errors, cost so far
                so_far["flops"] += record["cost"]["flops"]
                so_far["errors"] += record["error"] is not None
                so_far["done"] += 1
                mean = so_far["flops"] / so_far["done"] / 1e9
                errors = f", [red]{so_far['errors']} failed[/]" if so_far["errors"] else ""
                bar.update(task, advance=1, description=f"{mean:.3g} GFLOP/problem{errors}")

            run = runner.run(problems_, out=out, resume=resume, force=force, progress=advance)
            summary = asyncio.run(run)
        asyncio.run(runner.aclose())
    except KeyboardInterrupt:
        done = len(getattr(runner, "records", []))
        where = f"; saved in {out}/results.jsonl: continue with --resume" if out else "; nothing was saved (no --out)"
        console.print(f"interrupted after {done} of {len(problems_)} problems{where}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        _print_summary(spec, name, summary)
    stopped = summary["budget"]
    if stopped["problems_refused"]:
        first = stopped["first_refusal"]
        console.print(
            f"the budget refused {stopped['refusals']} calls in {stopped['problems_refused']} of "
            f"{summary['problems']} problems ({stopped['problems_without_answer']} got no answer); "
            f"the first, {first['id']}: {first['refusal']}",
            highlight=False,
            soft_wrap=True,
        )
    if summary["problems"] and stopped["problems_without_answer"] == summary["problems"]:
        raise RunFailedError(f"{spec}: the budget let no problem get an answer (raise its limits)")
    if summary["errors"]:
        first = summary["first_error"]
        raise RunFailedError(
            f"{summary['errors']} of {summary['problems']} problems failed; the first, {first['id']}: {first['error']}"
        )


class RunFailedError(ArchonError, RuntimeError):
    """Problems of a run failed (their records hold the errors); the run exits with status 1."""


def _print_summary(spec: str, name: str, summary: dict[str, Any]) -> None:
    table = Table(title=f"{spec} on {name} ({summary['problems']} problems)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    acc, cov = summary["accuracy"], summary["coverage"]
    table.add_row("accuracy", "-" if acc is None else f"{acc:.3f}")
    table.add_row("coverage", "-" if cov is None else f"{cov:.3f}")
    table.add_row("errors", str(summary["errors"]))
    per = summary["per_problem"]
    for key, label in COSTS.items():
        table.add_row(f"{label} / problem", f"{per.get(key, 0):.4g}")
    table.add_row("wall seconds (run)", f"{summary['seconds']:.2f}")
    Console().print(table)
    Console().print(cost_table(summary["cost"]["by_node"], summary["cost"]["total"], by="node"))
    curve = summary.get("scaling")
    if curve:
        scaling = Table(title="samples per problem: coverage (unbiased pass@k) and majority@k")
        for col in ("k", "pass@k", "majority@k", "problems"):
            scaling.add_column(col, justify="right")
        majority = curve["majority@k"] or [None] * len(curve["k"])  # code problems: nothing to vote on
        for row in zip(curve["k"], curve["pass@k"], majority, curve["problems"], strict=True):
            scaling.add_row(str(row[0]), f"{row[1]:.3f}", "-" if row[2] is None else f"{row[2]:.3f}", str(row[3]))
        Console().print(scaling)


def _problems(spec_file: str, s: Any, dataset: str | None, split: str | None, limit: int | None) -> list[Any]:
    from archon import data
    from archon.core import DataError

    d = _dataset_of(spec_file, s, dataset, split, limit)
    try:
        problems_ = data.load(d.name, split=d.split)
    except DataError as exc:  # name the flag (or the spec's section) that chose the data
        message = str(exc)
        if "has no split" in message:
            raise DataError(f"{'--split' if split else f'{spec_file}: dataset.split'}: {message}") from None
        if "no data set or file named" in message:
            raise DataError(f"{'--dataset' if dataset else f'{spec_file}: dataset.name'}: {message}") from None
        raise
    return problems_[: d.limit] if d.limit else problems_


@app.command()
def tune(
    spec: Annotated[str, typer.Argument(help="The spec file, with {tune: ...} values.")],
    trials: Annotated[int | None, typer.Option(help="Finished trials the study should hold.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop starting trials after S seconds.")] = None,
    budget_flops: Annotated[float | None, typer.Option(help="Limit: mean FLOPs per problem.")] = None,
    budget_tokens: Annotated[float | None, typer.Option(help="Limit: mean tokens per problem.")] = None,
    budget_calls: Annotated[float | None, typer.Option(help="Limit: mean model calls per problem.")] = None,
    budget_latency: Annotated[
        float | None, typer.Option(help="Limit: mean idealized latency per problem (s), on --hardware.")
    ] = None,
    budget_seconds: Annotated[float | None, typer.Option(help="Limit: mean wall seconds per problem.")] = None,
    budget_dollars: Annotated[float | None, typer.Option(help="Limit: mean dollars per problem.")] = None,
    hardware: Annotated[str | None, typer.Option(help="Hardware profile for latency (h100, a100, l4, cpu).")] = None,
    objectives: Annotated[
        str | None, typer.Option(help="accuracy (default) or accuracy,flops / accuracy,latency for a front.")
    ] = None,
    sampler: Annotated[str | None, typer.Option(help="tpe (default), nsga2, gp or random.")] = None,
    startup: Annotated[
        str | None,
        typer.Option(help="cover (default): a new study first tries every categorical choice once; none: off."),
    ] = None,
    minibatch: Annotated[int | None, typer.Option(help="Score trials on N problems; re-score the best.")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna RDB URL (postgresql://...); default SQLite.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes sharing the study (default 1).")] = None,
    out: Annotated[str | None, typer.Option(help="Study directory (default: studies/SPEC-STEM).")] = None,
    study_name: Annotated[str | None, typer.Option("--study", help="Study name (default: the spec's stem).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the study in --out.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not share generations between trials.")] = False,
    no_repair: Annotated[
        bool, typer.Option("--no-repair", help="Do not retry a trial over the budget with its n scaled to fit.")
    ] = False,
    dataset: Annotated[str | None, typer.Option(help="Data set name or JSONL path (default: the spec's).")] = None,
    split: Annotated[str | None, typer.Option(help="Split to tune on (default: the spec's).")] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N problems.")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampler and run seed.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
    worker: Annotated[bool, typer.Option(hidden=True, help="Run trials only (spawned by --workers).")] = False,
) -> None:
    """Tune a spec's {tune: ...} values with Optuna under compute limits; write best.yaml.

    The flags override the spec's ``tune`` section field for field; the result is validated once, as a
    ``TuneSpec``. Worker processes (``--workers``) read the resolved spec the study writes
    (``worker.yaml``: data set and tune settings included), not a copy of the flags.
    """
    import json
    import subprocess
    import warnings
    from pathlib import Path

    import optuna

    from archon.spec import load_spec
    from archon.tune.study import Study, StudyError
    from budgets import LIMITS

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for handler in optuna.logging.get_logger("optuna").handlers:  # Ctrl-C is said in one line, below
        handler.addFilter(_not_interrupted)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    s = load_spec(spec)
    flags = locals()
    limits = {k: flags[f"budget_{k}"] for k in LIMITS if flags[f"budget_{k}"] is not None}
    overrides = {
        "budget": limits,
        "trials": trials,
        "timeout": timeout,
        "hardware": hardware,
        "objectives": objectives.split(",") if objectives else None,
        "sampler": sampler,
        "startup": startup,
        "minibatch": minibatch,
        "storage": storage,
        "workers": workers,
        "study": study_name or (None if worker else (s.tune.study if s.tune and s.tune.study else Path(spec).stem)),
        "cache": False if no_cache else None,
        "repair": False if no_repair else None,
        "seed": seed,
    }
    options = _tune_options(s, overrides, spec)
    problems_ = _problems(spec, s, dataset, split, limit)
    directory = Path(out) if out else Path("studies") / Path(spec).stem
    from archon.rundir import check_writable

    check_writable("--out", directory)
    if options.workers > 1:  # the processes share the cores instead of each taking all of them
        import os

        import torch

        threads = max(1, (os.cpu_count() or 1) // options.workers)
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
    console = Console(stderr=True)
    table = _TrialTable(console, options, quiet=as_json or worker)
    study = Study(s, problems_, directory, options, resume=resume, worker=worker, on_trial=table.row)
    procs = []
    if options.workers > 1 and not worker:
        resolved = s.model_copy(update={"tune": options, "dataset": _dataset_of(spec, s, dataset, split, limit)})
        worker_spec = directory / "worker.yaml"
        worker_spec.write_text(resolved.model_dump_json(exclude_none=True, exclude_defaults=True))
        args = [sys.executable, "-m", "archon.cli", "tune", str(worker_spec), "--out", str(directory), "--worker"]
        procs = [subprocess.Popen(args) for _ in range(options.workers - 1)]
    if study.rerun and not as_json:
        console.print(
            f"resuming: interrupted trial(s) {', '.join(map(str, study.rerun))} queued again", highlight=False
        )
    table.header()
    try:
        with table.live(study.finished()):
            study.optimize()
    except KeyboardInterrupt:
        for proc in procs:
            proc.terminate()
        finished = study.finished()
        study.close()
        console.print(
            f"interrupted with {finished} finished trials saved in {directory}: continue with --resume",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    finally:
        failed = [proc.args for proc in procs if proc.wait() != 0]
    if failed:
        console.print(f"[yellow]warning:[/] {len(failed)} worker process(es) failed; their trials are in the study")
    if worker:
        study.close()
        return
    result = study.result()
    study.close()
    if as_json:
        typer.echo(json.dumps(result, default=str))
    else:
        _print_result(result, directory)
    if result["best"] is None:
        raise StudyError(f"{directory}: no configuration met the limits {options.budget} (of {table.seen} trials)")


def _not_interrupted(record: Any) -> bool:
    """A logging filter: drop Optuna's report (with a traceback) of the trial that Ctrl-C failed."""
    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, KeyboardInterrupt) and "KeyboardInterrupt" not in str(record.getMessage())


_TUNE_FLAGS = {"study": "--study", "cache": "--no-cache", "repair": "--no-repair"}


def _tune_options(s: Any, overrides: dict[str, Any], spec_file: str = "") -> Any:
    """The spec's ``tune`` section with the flags' overrides, validated once as a ``TuneSpec``.

    An invalid value is one line naming the flag that gave it (``--budget-flops``, ``--objectives`` ...),
    or the spec's ``tune.`` field when the flags did not set it.
    """
    from pydantic import ValidationError

    from archon.spec import SpecError
    from archon.spec.models import TuneSpec

    try:
        return TuneSpec.of(s, **overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(x) for x in err["loc"]] or ["hardware"]  # the one check across fields: latency needs hardware
        given = overrides.get(loc[0])
        if loc[0] == "budget" and len(loc) > 1:
            given = (overrides.get("budget") or {}).get(loc[1])
            flag = f"--budget-{loc[1]}"
        else:
            flag = _TUNE_FLAGS.get(loc[0], f"--{loc[0].replace('_', '-')}")
        where = flag if given is not None else f"{spec_file}: tune.{'.'.join(loc)}"
        raise SpecError(f"{where}: {err['msg'].removeprefix('Value error, ')}") from None


def _dataset_of(spec_file: str, s: Any, dataset: str | None, split: str | None, limit: int | None) -> Any:
    """The data set a command reads: the flags over the spec's ``dataset`` section."""
    from pathlib import Path

    from archon.spec import SpecError
    from archon.spec.models import DatasetSpec

    name = dataset or (s.dataset.name if s.dataset else None)
    if name is None:
        raise SpecError(f"{spec_file}: no dataset: give --dataset or a dataset section")
    if limit is not None and limit < 1:
        raise SpecError(f"--limit: must be at least 1, got {limit}")
    if Path(name).expanduser().is_file():  # a path stays right from another directory (worker processes)
        name = str(Path(name).expanduser().resolve())
    return DatasetSpec(
        name=name,
        split=split or (s.dataset.split if s.dataset else "dev"),
        limit=limit or (s.dataset.limit if s.dataset else None),
    )


class _TrialTable:
    """One line per finished trial, under a live status line (trials done, best so far, elapsed): ``archon tune``."""

    def __init__(self, console: _RichConsole, options: Any, *, quiet: bool) -> None:
        self.console, self.options, self.quiet, self.seen = console, options, quiet, 0
        self.best: float | None = None
        self._progress: Any = None
        self._task: Any = None

    def header(self) -> None:
        if not self.quiet:
            self.console.print(
                f"[bold]{'trial':>5} {'state':<8} {'accuracy':>8} {'GFLOP/pb':>9} {'latency':>9} {'feasible':>8}"
                "  params"
            )

    @contextlib.contextmanager
    def live(self, done: int) -> Iterator[None]:
        """Show the status line while the block runs (not when quiet, nor when stderr is not a terminal)."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        if self.quiet:
            yield
            return
        columns = (TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"))
        with Progress(*columns, TimeElapsedColumn(), console=self.console, transient=True) as progress:
            self._progress = progress
            self._task = progress.add_task("", total=self.options.trials, completed=done)
            try:
                yield
            finally:
                self._progress = None

    def row(self, t: Any) -> None:
        self.seen += 1
        a = t.user_attrs
        if a.get("feasible") and "accuracy" in a and (self.best is None or a["accuracy"] > self.best):
            self.best = float(a["accuracy"])
        if self.quiet:
            return
        acc = f"{a['accuracy']:.3f}" if "accuracy" in a else "-"
        gf = f"{a['flops'] / 1e9:.3f}" if "flops" in a else "-"
        lat = f"{a['latency']:.2e}" if a.get("latency") else "-"
        feas = {True: f"{'yes':>8}", False: f"[red]{'no':>8}[/]"}.get(a.get("feasible"), f"{'-':>8}")
        params = _params(t.params)
        if "repair_of" in a:
            params += f" (repair of {a['repair_of']})"
        self.console.print(
            f"{t.number:>5} {t.state.name.lower():<8} {acc:>8} {gf:>9} {lat:>9} {feas}  {params}", highlight=False
        )
        if self._progress is not None:
            best = "-" if self.best is None else f"{self.best:.3f}"
            self._progress.update(self._task, advance=1, description=f"best feasible accuracy {best}")


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _params(params: dict[str, Any]) -> str:
    """``k=v`` pairs; names lose their node prefix when one node holds every parameter."""
    nodes = {k.split(".", 1)[0] for k in params}
    return " ".join(f"{k.split('.', 1)[-1] if len(nodes) == 1 else k}={_short(v)}" for k, v in params.items())


def _print_result(result: dict[str, Any], directory: Any) -> None:
    console = Console()
    counts = ", ".join(f"{v} {k}" for k, v in result["trials"].items())
    console.print(f"study {result['study']} in {directory}: {counts}; {result['feasible_trials']} feasible")
    rows = result["front"] or ([result["best"]] if result["best"] else [])
    if not rows:
        console.print("[red]no configuration met the limits[/]")
        return
    title = "Pareto front" if result["front"] else "best feasible configuration"
    table = Table(title=f"{title} (scored on {result['problems']} problems)")
    for col in ("trial", "accuracy", "GFLOP / problem", "latency / problem"):
        table.add_column(col, no_wrap=True)
    table.add_column("params", overflow="fold")  # wrapped, never cut
    for c in rows:
        sc = c["full"] or c["search"]
        params = _params(c["params"])
        table.add_row(
            str(c["number"]), f"{sc['accuracy']:.3f}", f"{sc['flops'] / 1e9:.3f}", f"{sc.get('latency', 0):.3g}", params
        )
    console.print(table)
    if result["best"]:
        console.print(f"wrote {directory}/best.yaml (archon run accepts it)")


@app.command()
def report(
    paths: Annotated[
        list[str], typer.Argument(help="A study directory (archon tune), or run directories (archon run --out).")
    ],
    out: Annotated[str | None, typer.Option(help="Where the plots go (default: the first directory/report).")] = None,
    storage: Annotated[str | None, typer.Option(help="The study's storage URL (default: its SQLite file).")] = None,
    study_name: Annotated[str | None, typer.Option("--study", help="The study's name (default: the only one).")] = None,
) -> None:
    """Plot a study (Pareto front, every trial, importances) or runs (coverage and majority@k vs samples and FLOPs)."""
    from pathlib import Path

    dirs = [Path(p) for p in paths]
    runs = [d for d in dirs if (d / "summary.json").is_file() and not (d / "optuna.db").is_file()]
    target = Path(out) if out else dirs[0] / "report"
    if runs and (len(runs) != len(dirs) or storage or study_name):
        odd = next((d for d in dirs if d not in runs), None)
        raise typer.BadParameter(
            f"{odd or dirs[0]}: is not a run directory; give one study, or run directories only", param_hint="PATHS"
        )
    if runs:
        from archon.scaling_report import load_run, write_scaling_report

        names = [d.name if [x.name for x in runs].count(d.name) == 1 else str(d) for d in runs]
        written = write_scaling_report([load_run(d, n) for d, n in zip(runs, names, strict=True)], target)
        for path in written["files"].values():
            typer.echo(f"wrote {path}")
        for name, fit in written["fits"].items():
            if fit is None:
                typer.echo(f"note: {name}: too few points with coverage above 0 to fit")
            else:
                typer.echo(f"{name}: coverage ≈ exp({fit['a']:.4f} · k^{fit['b']:.4f})  (R² on log c {fit['r2']:.3f})")
        return
    if len(dirs) != 1:
        raise typer.BadParameter("give one study directory (several directories must all be runs)", param_hint="PATHS")
    from archon.tune.report import load_study, write_report
    from archon.tune.study import storage_url

    study = load_study(dirs[0], storage=storage and storage_url(storage), study_name=study_name)
    written = write_report(study, target)
    for path in written["files"].values():
        typer.echo(f"wrote {path}")
    for note in written["notes"]:
        typer.echo(f"note: {note}")


@app.command()
def serve(
    spec: Annotated[str, typer.Argument(help="The spec file (YAML or JSON) whose pipeline answers requests.")],
    host: Annotated[str, typer.Option(help="Address to listen on (beyond loopback: needs --api-key).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    api_key: Annotated[str | None, typer.Option(help="Require 'Authorization: Bearer KEY' on /v1/.")] = None,
    max_concurrency: Annotated[int, typer.Option(min=1, help="Requests run at once (their calls batch).")] = 64,
    max_queue: Annotated[int, typer.Option(min=0, help="Requests waiting beyond those; more get 429.")] = 256,
    max_body: Annotated[int, typer.Option(min=1024, help="Largest request body in bytes (more get 413).")] = 1 << 20,
    allow: Annotated[
        list[str] | None, typer.Option(help="NODE.PARAM a request may set in archon.params (repeatable).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="The model name clients use (default: the spec's stem).")] = None,
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
) -> None:
    """Serve a pipeline over an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models, /health)."""
    from pathlib import Path

    from archon.spec import SpecError, load_spec

    try:
        import uvicorn

        from archon.serve import Server, check_host, create_app
    except ImportError:
        raise SpecError('archon serve needs FastAPI and uvicorn: pip install "archon-its[serve]"') from None
    check_host(host, api_key)
    s = load_spec(spec)
    tuned = s.tunables()
    if tuned:
        raise SpecError(f"{spec}: {next(iter(tuned))}: a tuned value; serve a concrete spec (a study's best.yaml)")
    server = Server(s, name=name or Path(spec).stem, api_key=api_key, max_concurrency=max_concurrency,
                    max_queue=max_queue, max_body_bytes=max_body, allow=tuple(allow or ()), seed=seed)  # fmt: skip
    for a in server.allow:
        server._check_allowed(a)
    typer.echo(f"serving {server.name!r} ({spec}) on http://{host}:{port}/v1", err=True)
    uvicorn.run(create_app(server), host=host, port=port, log_level="warning", access_log=False)


@app.command()
def view(
    run_dir: Annotated[str, typer.Argument(help="A run directory written by archon run --out.")],
    problem: Annotated[str | None, typer.Option(help="Only this problem (its id).")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="The page (default: RUN_DIR/view.html).")] = None,
) -> None:
    """Write one self-contained HTML page of a run: the DAG, the problems, each problem's trace and search trees."""
    from pathlib import Path

    from archon.view import write_view

    path = write_view(Path(run_dir), Path(output) if output else None, problem)
    typer.echo(f"wrote {path}")


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
    from archon.rundir import check_writable
    from budgets.hardware import measure_local, save_profile

    if out:
        check_writable("--out", out, kind="file")
    p = measure_local(name)
    where = save_profile(p, out)
    peaks = ", ".join(f"{k} {v:g} TFLOP/s" for k, v in p.peak_tflops.items())
    typer.echo(f"{name}: {peaks}, {p.bandwidth_gbs:g} GB/s -> {where}")


def run() -> None:
    """Console-script entry point: run the app, turning project errors into one line."""
    try:  # typer >= 0.20 carries its own copy of click
        from typer._click import exceptions as click_errors  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - an older typer, on click itself
        from click import exceptions as click_errors

    debug = "--debug" in sys.argv[1:]
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click_errors.NoArgsIsHelpError as e:  # ``archon`` or a group alone: its help
        e.show()
        sys.exit(2)
    except click_errors.UsageError as e:  # an unknown command or flag, a value of the wrong type: one line
        where = e.ctx.command_path if e.ctx else "archon"
        message = " ".join(e.format_message().split())
        Console(stderr=True).print(
            f"[bold red]error:[/] {escape(f'{where}: {message} (see {where} --help)')}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except (ArchonError, BudgetError) as e:
        if debug:
            raise
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        if debug:
            raise
        Console(stderr=True).print("interrupted", highlight=False)
        sys.exit(130)


if __name__ == "__main__":
    run()
