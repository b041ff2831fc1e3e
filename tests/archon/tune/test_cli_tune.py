"""`archon tune` and `archon report` as real subprocesses: outputs, best.yaml, and one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SPEC = {
    "engines": {"m": {"model": "tiny-l"}},
    "dataset": {"name": "arith", "split": "dev"},
    "pipeline": [
        {
            "id": "a",
            "op": {"tune": {"type": "choice", "choices": ["self_consistency", "sample"]}},
            "params": {
                "engine": "m",
                "n": {"tune": {"type": "int", "low": 1, "high": 3}},
                "temperature": {"tune": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.5}},
                "max_tokens": 48,
            },
        }
    ],
    "tune": {"trials": 3, "pruner": "none"},
}


def archon(*args: object, timeout: int = 300) -> subprocess.CompletedProcess:
    exe = shutil.which("archon", path=os.path.dirname(sys.executable))
    cmd = [exe] if exe else [sys.executable, "-m", "archon.cli"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("tune")
    spec = tmp / "space.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    out = archon("tune", spec, "--limit", 6, "--out", tmp / "study", "--budget-flops", 5e8, "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp, json.loads(out.stdout)


@pytest.mark.slow
def test_tune_writes_a_concrete_best_spec_that_run_accepts(tuned: tuple[Path, dict]) -> None:
    tmp, result = tuned
    assert result["trials"] == {"complete": 3}
    best = result["best"]
    assert best["search"]["flops"] <= 5e8
    assert set(best["params"]) >= {"a.op", "a.n", "a.temperature"}
    study = tmp / "study"
    assert {p.name for p in study.iterdir()} >= {"optuna.db", "cache.sqlite", "spec.yaml", "best.yaml", "summary.json"}
    run = archon("run", study / "best.yaml", "--limit", 6, "--json")
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)["accuracy"] == pytest.approx(best["search"]["accuracy"])


def test_tune_first_tries_every_op(tuned: tuple[Path, dict]) -> None:
    import optuna

    tmp, _ = tuned
    study = optuna.load_study(study_name="space", storage=f"sqlite:///{tmp / 'study' / 'optuna.db'}")
    first = [t for t in study.trials if "startup" in t.user_attrs]
    assert [t.number for t in first] == [0, 1]  # the startup design: one trial per op, at the middle n
    assert {t.params["a.op"] for t in first} == {"self_consistency", "sample"}
    assert {(t.params["a.n"], t.params["a.temperature"]) for t in first} == {(2, 0.5)}


@pytest.mark.slow
def test_report_writes_the_plots(tuned: tuple[Path, dict]) -> None:
    tmp, _ = tuned
    out = archon("report", tmp / "study", "--out", tmp / "plots")
    assert out.returncode == 0, out.stderr[-2000:]
    written = {p.name for p in (tmp / "plots").iterdir()}
    assert {"pareto_front.png", "pareto_front.html", "trials.png"} <= written
    assert (tmp / "plots" / "trials.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_the_live_table_lists_every_trial(tmp_path: Path) -> None:
    spec = tmp_path / "space.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "tune": {"trials": 2, "pruner": "none"}}))
    out = archon("tune", spec, "--limit", 4, "--out", tmp_path / "s")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line for line in out.stderr.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 2 and all("complete" in r for r in rows)
    assert all("temperature=" in r for r in rows), rows  # a trial is one line, not wrapped at 80 columns
    assert "Loading weights" not in out.stderr and "it/s" not in out.stderr  # no library progress bars
    assert "best feasible configuration" in out.stdout and "best.yaml" in out.stdout
    assert "…" not in out.stdout  # the result table cuts nothing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget-latency", "1"], "needs a hardware profile: --hardware NAME"),
        (["--budget-flops", "-1"], "--budget-flops: Input should be greater than 0"),
        (["--hardware", "tpu9"], "tpu9"),
        (["--sampler", "cmaes"], "--sampler: Input should be 'tpe', 'nsga2', 'gp' or 'random'"),
        (["--objectives", "accuracy,joy"], "unknown cost"),
        (["--startup", "latin"], "--startup: Input should be 'cover' or 'none'"),
    ],
)
def test_bad_options_give_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    spec = tmp_path / "space.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    out = archon("tune", spec, "--limit", 2, "--out", tmp_path / "s", *args)
    assert out.returncode == 1
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_spec_without_tuned_values_is_refused(tmp_path: Path) -> None:
    out = archon("tune", Path(__file__).parents[3] / "examples" / "greedy.yaml", "--out", tmp_path / "s")
    assert out.returncode == 1 and "nothing to tune" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_an_impossible_budget_reports_no_best(tmp_path: Path) -> None:
    spec = tmp_path / "space.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "tune": {"trials": 2, "pruner": "none"}}))
    out = archon("tune", spec, "--limit", 2, "--out", tmp_path / "s", "--budget-flops", 10)
    assert out.returncode == 1 and "no configuration met the limits" in out.stderr
    assert not (tmp_path / "s" / "best.yaml").exists()
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["best"] is None
