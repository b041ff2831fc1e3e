"""A corpus of bad command lines: one wrong flag, argument or command per case, with its expected message.

Each runs in process (``cli.run()`` with ``sys.argv`` set) in an empty ``tmp_path`` (so that nothing is
written into the checkout) and must be refused at once: a non-zero exit, at most three lines on stderr
naming the flag (or the path, command or value at fault), the expected message, and no traceback.
Nothing is worth loading a model or measuring the machine for before the command line is checked, so
either fails the test (:func:`no_heavy_work`).

In the argument lists, ``{file}`` is a regular file in ``tmp_path``, ``{tmp}`` is ``tmp_path`` itself and
``{examples}`` the repository's ``examples/`` folder.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from archon import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GREEDY = "{examples}/greedy.yaml"
TUNE = "{examples}/tune_arith.yaml"

CASES = [
    # archon run
    pytest.param(["run", GREEDY, "--limit", "0"], "--limit", "--limit: must be at least 1, got 0", id="run-limit-0"),
    pytest.param(["run", GREEDY, "--limit", "-3"], "--limit", "must be at least 1, got -3", id="run-limit-negative"),
    pytest.param(["run", GREEDY, "--seed", "abc"], "--seed", "Invalid value for '--seed'", id="run-seed-abc"),
    pytest.param(
        ["run", GREEDY, "--out", "{file}/run", "--limit", "1"],
        "--out",
        "--out {file}/run: {file} is a file, not a directory",
        id="run-out-under-a-file",
    ),
    pytest.param(["run", GREEDY, "--resume"], "--resume", "--resume needs --out", id="run-resume-without-out"),
    pytest.param(
        ["run", GREEDY, "--dataset", "nosuch"],
        "--dataset",
        "--dataset: no data set or file named 'nosuch'",
        id="run-dataset-unknown",
    ),
    pytest.param(
        ["run", GREEDY, "--split", "nosuch"],
        "--split",
        "--split: data set 'arith' has no split 'nosuch'",
        id="run-split-unknown",
    ),
    pytest.param(["run", "{tmp}/nosuch.yaml"], "nosuch.yaml", "no such spec file", id="run-spec-missing"),
    pytest.param(["run", "{tmp}"], "{tmp}", "no such spec file", id="run-spec-a-directory"),
    pytest.param(["run", GREEDY, "--limt", "1"], "--limt", "No such option: --limt", id="run-unknown-flag"),
    # archon tune
    pytest.param(
        ["tune", TUNE, "--trials", "0"],
        "--trials",
        "--trials: Input should be greater than or equal to 1",
        id="tune-trials-0",
    ),
    pytest.param(
        ["tune", TUNE, "--trials", "-1"],
        "--trials",
        "--trials: Input should be greater than or equal to 1",
        id="tune-trials-negative",
    ),
    pytest.param(
        ["tune", TUNE, "--timeout", "-5"],
        "--timeout",
        "--timeout: Input should be greater than 0",
        id="tune-timeout-negative",
    ),
    pytest.param(
        ["tune", TUNE, "--budget-flops", "-1"],
        "--budget-flops",
        "--budget-flops: Input should be greater than 0",
        id="tune-budget-flops-negative",
    ),
    pytest.param(
        ["tune", TUNE, "--budget-flops", "0"],
        "--budget-flops",
        "--budget-flops: Input should be greater than 0",
        id="tune-budget-flops-0",
    ),
    pytest.param(
        ["tune", TUNE, "--budget-flops", "nan"], "--budget-flops", "--budget-flops:", id="tune-budget-flops-nan"
    ),
    pytest.param(
        ["tune", TUNE, "--budget-tokens", "inf"],
        "--budget-tokens",
        "--budget-tokens: Input should be a finite number",
        id="tune-budget-tokens-inf",
    ),
    pytest.param(
        ["tune", TUNE, "--minibatch", "0"],
        "--minibatch",
        "--minibatch: Input should be greater than or equal to 1",
        id="tune-minibatch-0",
    ),
    pytest.param(
        ["tune", TUNE, "--workers", "0"],
        "--workers",
        "--workers: Input should be greater than or equal to 1",
        id="tune-workers-0",
    ),
    pytest.param(
        ["tune", TUNE, "--storage", "nosuch://x"],
        "--storage",
        "--storage: unknown storage scheme 'nosuch'",
        id="tune-storage-unknown-scheme",
    ),
    pytest.param(
        ["tune", TUNE, "--storage", "postgresql://u:p@127.0.0.1:1/db"],
        "--storage",
        "--storage postgresql+psycopg://u:***@127.0.0.1:1/db: cannot open the study storage",
        id="tune-storage-unreachable",
    ),
    pytest.param(
        ["tune", TUNE, "--out", "{file}/study"],
        "--out",
        "--out {file}/study: {file} is a file, not a directory",
        id="tune-out-under-a-file",
    ),
    pytest.param(
        ["tune", TUNE, "--objectives", "accuracy,joules"],
        "--objectives",
        "--objectives: unknown cost 'joules'",
        id="tune-objectives-unknown",
    ),
    pytest.param(
        ["tune", TUNE, "--sampler", "cmaes"],
        "--sampler",
        "--sampler: Input should be 'tpe', 'nsga2', 'gp' or 'random'",
        id="tune-sampler-unknown",
    ),
    pytest.param(
        ["tune", TUNE, "--startup", "all"],
        "--startup",
        "--startup: Input should be 'cover' or 'none'",
        id="tune-startup-unknown",
    ),
    pytest.param(
        ["tune", TUNE, "--hardware", "tpu9"],
        "--hardware",
        "--hardware: unknown hardware profile 'tpu9'",
        id="tune-hardware-unknown",
    ),
    pytest.param(["tune", TUNE, "--limit", "0"], "--limit", "--limit: must be at least 1, got 0", id="tune-limit-0"),
    pytest.param(
        ["tune", TUNE, "--dataset", "nosuch"],
        "--dataset",
        "--dataset: no data set or file named 'nosuch'",
        id="tune-dataset-unknown",
    ),
    pytest.param(["tune", "{tmp}/nosuch.yaml"], "nosuch.yaml", "no such spec file", id="tune-spec-missing"),
    # archon graph
    pytest.param(
        ["graph", GREEDY, "-o", "{file}/g.svg"],
        "--output",
        "--output {file}/g.svg: {file} is a file, not a directory",
        id="graph-out-under-a-file",
    ),
    pytest.param(
        ["graph", GREEDY, "-o", "{tmp}/g.pdf"],
        "g.pdf",
        "draw to .svg, .mmd (Mermaid) or .png",
        id="graph-output-suffix",
    ),
    pytest.param(["graph", GREEDY], "--output", "Missing option '-o' / '--output'", id="graph-output-missing"),
    # archon cost
    pytest.param(
        ["cost", "tiny-l", "--prompt", "-5"],
        "--prompt",
        "--prompt: must be at least 1, got -5",
        id="cost-prompt-negative",
    ),
    pytest.param(
        ["cost", "tiny-l", "--generate", "0"], "--generate", "--generate: must be at least 1", id="cost-generate-0"
    ),
    pytest.param(["cost", "tiny-l", "--n", "0"], "--n", "--n: must be at least 1, got 0", id="cost-n-0"),
    pytest.param(
        ["cost", "tiny-l", "--cached", "-1"], "--cached", "--cached: must be at least 0", id="cost-cached-negative"
    ),
    pytest.param(
        ["cost", "tiny-l", "--cached", "300"],
        "--cached",
        "--cached: must be at most --prompt",
        id="cost-cached-above-prompt",
    ),
    pytest.param(
        ["cost", "tiny-l", "--dtype", "float8"],
        "--dtype",
        "--dtype: unknown number format 'float8'",
        id="cost-dtype-unknown",
    ),
    pytest.param(
        ["cost", "tiny-q"], "'tiny-q'", "no config, model directory or embedded model name", id="cost-model-unknown"
    ),
    # archon hardware, archon validate, unknown commands
    pytest.param(
        ["hardware", "measure", "--out", "{file}/profiles.yaml"],
        "--out",
        "--out {file}/profiles.yaml: {file} is a file, not a directory",
        id="hardware-measure-out-under-a-file",
    ),
    pytest.param(["hardware", "mesure"], "mesure", "No such command 'mesure'", id="hardware-unknown-command"),
    pytest.param(["validate", "{tmp}/nosuch.yaml"], "nosuch.yaml", "no such spec file", id="validate-spec-missing"),
    pytest.param(
        ["validate", "{tmp}"], "{tmp}", "no such spec file (it is a directory)", id="validate-spec-a-directory"
    ),
    pytest.param(["rnu", GREEDY], "rnu", "No such command 'rnu'", id="unknown-command"),
]


@pytest.fixture(autouse=True)
def no_heavy_work(monkeypatch: pytest.MonkeyPatch, refuse_model_loads: Callable[[str], None]) -> None:
    """Loading a model or measuring the machine fails the test: a bad command line is refused before either."""
    import budgets.hardware

    def measure(*args: object, **kwargs: object) -> None:
        pytest.fail("measured the machine before refusing the command line")

    refuse_model_loads("the command line")
    monkeypatch.setattr(budgets.hardware, "measure_local", measure)


def test_the_corpus_is_there() -> None:
    assert len(CASES) >= 28


@pytest.mark.parametrize(("args", "named", "expected"), CASES)
def test_a_bad_command_line_is_refused_in_one_line(
    args: list[str],
    named: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "file").write_text("a regular file\n")
    fill = {"{file}": str(tmp_path / "file"), "{tmp}": str(tmp_path), "{examples}": str(EXAMPLES)}

    def filled(text: str) -> str:
        for key, value in fill.items():
            text = text.replace(key, value)
        return text

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["archon", *map(filled, args)])
    with pytest.raises(SystemExit) as exit_:
        cli.run()
    assert exit_.value.code not in (0, None)
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    assert 1 <= len(err.splitlines()) <= 3, err
    message = " ".join(err.split())  # rich may wrap a long line
    assert filled(named) in message, message
    assert filled(expected) in message, message
