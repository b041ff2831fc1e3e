"""A study's storage under real failures: ``kill -9`` of a SQLite study, and workers sharing a PostgreSQL study.

Every test runs ``archon tune`` as real processes on the embedded tiny model (a trial takes about a second)
and reads the study back through Optuna, as another worker or ``archon report`` would.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import FrozenTrial, TrialState

SPEC = """\
engines: {m: {kind: transformers, model: tiny-l}}
dataset: {name: arith, split: dev}
pipeline:
  - id: a
    op: self_consistency
    params:
      engine: m
      n: {tune: {type: int, low: 1, high: 4}}
      temperature: {tune: {type: float, low: 0.0, high: 1.0}}
      max_tokens: 48
tune: {trials: 4, pruner: none}
"""
STUDY = "tiny"  # the spec file's stem
LIMIT = ["--limit", "6"]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
PROCESS_TIMEOUT = 300  # seconds: generous, the machines that run the tests are shared and noisy
# One torch thread per process: several processes on a few shared cores otherwise oversubscribe them (a busy
# two-core machine ran a trial 7x slower with torch's default threads).
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def write_spec(tmp_path: Path) -> Path:
    path = tmp_path / f"{STUDY}.yaml"
    path.write_text(SPEC)
    return path


def archon(*args: Any) -> list[str]:
    return [sys.executable, "-m", "archon.cli", *map(str, args)]


def start(*args: Any, **kwargs: Any) -> subprocess.Popen[str]:
    """``archon ARGS`` as a process (stdout and stderr piped unless given)."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(archon(*args), env=ENV, text=True, preexec_fn=_default_sigint, **kwargs)


def _default_sigint() -> None:
    """In the child: Ctrl-C as a terminal gives it, even when the tests run in a background job (which ignores it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def call(*args: Any) -> subprocess.CompletedProcess[str]:
    """``archon ARGS`` to its end."""
    return subprocess.run(archon(*args), env=ENV, capture_output=True, text=True, timeout=PROCESS_TIMEOUT)


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Wait for ``proc``; its stdout and stderr, after checking it succeeded."""
    out, err = proc.communicate(timeout=PROCESS_TIMEOUT)
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}:\n{err[-3000:]}"
    return out, err


def result_json(stdout: str) -> dict[str, Any]:
    """The result ``archon ... --json`` prints (its last line)."""
    return json.loads(stdout.strip().splitlines()[-1])


def finished(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def snapshot(trials: list[FrozenTrial]) -> dict[int, tuple[Any, ...]]:
    """What must survive anything later: each trial's state, parameters, values and attributes, by number."""
    return {t.number: (t.state, t.params, t.values, t.user_attrs) for t in trials}


def worker_pid(trial: FrozenTrial) -> int:
    """The process that ran ``trial`` (its ``worker`` attribute is ``host:pid``)."""
    return int(str(trial.user_attrs["worker"]).rsplit(":", 1)[-1])


def sqlite_study_exists(db: Path) -> bool:
    """Whether ``archon tune`` has created the study, read without writing (Optuna would create the tables)."""
    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT 1 FROM studies WHERE study_name = ?", (STUDY,)).fetchone() is not None
    except sqlite3.OperationalError:  # the tables are being created
        return False


def wait_for_complete_trials(proc: subprocess.Popen[str], db: Path, url: str, count: int, log: Path) -> None:
    deadline = time.monotonic() + PROCESS_TIMEOUT
    study = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"archon tune exited {proc.returncode} early:\n{log.read_text()[-3000:]}"
        if study is None and sqlite_study_exists(db):
            # archon writes meanwhile: wait for its locks rather than fail
            storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
            study = optuna.load_study(study_name=STUDY, storage=storage)
        if study is not None and len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"no {count} complete trials in {PROCESS_TIMEOUT} s:\n{log.read_text()[-3000:]}")


def assert_best_yaml_is_the_best_configuration(directory: Path, result: dict[str, Any]) -> None:
    best = yaml.safe_load((directory / "best.yaml").read_text())
    params = best["pipeline"][0]["params"]
    assert {"a.n": params["n"], "a.temperature": params["temperature"]} == result["best"]["params"]
    assert "tune" not in json.dumps(best["pipeline"])  # concrete: no {tune: ...} left


# --- SQLite: kill -9 loses only the trial in flight -----------------------------------------------------------------


@pytest.mark.slow
def test_a_study_killed_with_sigkill_resumes_with_every_finished_trial(tmp_path: Path) -> None:
    spec, out, log = write_spec(tmp_path), tmp_path / "study", tmp_path / "killed.log"
    db = out / "optuna.db"
    url = f"sqlite:///{db}"
    with log.open("w") as stderr:
        proc = start("tune", spec, *LIMIT, "--out", out, "--trials", 1000, stdout=stderr, stderr=stderr)
        try:
            wait_for_complete_trials(proc, db, url, 2, log)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL  # killed mid-study, not finished

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    killed = optuna.load_study(study_name=STUDY, storage=url)
    before = snapshot(killed.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    assert len(before) >= 2
    assert all(len(values) == 1 for _state, _params, values, _attrs in before.values())

    # without --resume, an existing study is an error: one line, no traceback, and the study is untouched
    again = call("tune", spec, *LIMIT, "--out", out)
    assert again.returncode == 1, again.stderr
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and "--resume" in lines[0] and "Traceback" not in again.stderr, again.stderr
    assert not (out / "best.yaml").exists()

    total = len(finished(killed)) + 2
    resumed = start("tune", spec, *LIMIT, "--out", out, "--resume", "--trials", total, "--json")
    stdout, _ = finish(resumed)
    result = result_json(stdout)

    study = optuna.load_study(study_name=STUDY, storage=url)
    after = snapshot(study.get_trials(deepcopy=False))
    assert {n: after[n] for n in before} == before  # every trial finished before the kill, unchanged
    assert len(finished(study)) == total
    assert result["trials"].get("complete", 0) + result["trials"].get("pruned", 0) == total
    new = [t for t in finished(study) if t.number not in before]
    assert len(new) == 2 and {worker_pid(t) for t in new} == {resumed.pid}

    complete = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    best = result["best"]
    assert best["number"] in complete
    assert best["search"]["accuracy"] == max(t.values[0] for t in complete.values())
    assert_best_yaml_is_the_best_configuration(out, result)
    run = call("run", out / "best.yaml", "--limit", 2, "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    summary = result_json(run.stdout)
    assert summary["problems"] == 2 and summary["errors"] == 0


# --- PostgreSQL: workers of several processes share one study -------------------------------------------------------


@pytest.mark.slow
def test_workers_share_a_postgresql_study_and_another_process_resumes_it(tmp_path: Path, postgres_url: str) -> None:
    spec = write_spec(tmp_path)
    url = postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)

    shared = [spec, *LIMIT, "--storage", postgres_url, "--json"]
    first = start("tune", *shared, "--workers", 2, "--trials", 6, "--out", tmp_path / "a")
    stdout, _ = finish(first)
    result = result_json(stdout)

    study = optuna.load_study(study_name=STUDY, storage=url)
    done = finished(study)
    assert len(done) >= 6
    workers = {worker_pid(t) for t in done}
    assert first.pid in workers and len(workers) == 2, workers  # the main process and its spawned worker
    assert result["best"]["number"] in {t.number for t in done}
    assert (tmp_path / "a" / "best.yaml").exists()
    assert not (tmp_path / "a" / "optuna.db").exists()  # the study lives in PostgreSQL only
    assert_best_yaml_is_the_best_configuration(tmp_path / "a", result)

    # another process, in another directory, continues the same study
    before = snapshot(study.get_trials(deepcopy=False))
    total = len(done) + 2
    second = start("tune", *shared, "--resume", "--trials", total, "--out", tmp_path / "b")
    stdout, _ = finish(second)
    study = optuna.load_study(study_name=STUDY, storage=url)
    after = snapshot(study.get_trials(deepcopy=False))
    assert {n: after[n] for n in before} == before
    assert len(finished(study)) == total
    new = [t for t in finished(study) if t.number not in before]
    assert len(new) == 2 and {worker_pid(t) for t in new} == {second.pid}
    assert result_json(stdout)["trials"]["complete"] == total
    assert (tmp_path / "b" / "best.yaml").exists()


# --- Ctrl-C or kill -9 at any point, then --resume: the study left alone -------------------------------------------

MEASURED = {"number", "seconds", "trial_seconds", "worker", "directory", "tokens_generated", "rerun_of"}
"""What a resumed study may differ in: trial numbers (a rerun is a new trial), wall times, the process that
ran a trial, the directory, and the tokens actually generated (work in flight when interrupted is redone)."""


def comparable(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: comparable(v) for k, v in data.items() if k not in MEASURED}
    if isinstance(data, list):
        return [comparable(v) for v in data]
    return data


def trials_of(directory: Path) -> list[tuple[str, Any, Any]]:
    url = f"sqlite:///{directory / 'optuna.db'}"
    study = optuna.load_study(study_name=STUDY, storage=url)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted((json.dumps(t.params, sort_keys=True), t.values, comparable(dict(t.user_attrs))) for t in done)


@pytest.fixture(scope="module")
def study_left_alone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A spec and the study of 6 trials it gives when nothing interrupts it (shared by both signals)."""
    base = tmp_path_factory.mktemp("alone")
    spec = write_spec(base)
    whole = call("tune", spec, *LIMIT, "--out", base / "whole", "--trials", 6, "--json")
    assert whole.returncode == 0, whole.stderr[-3000:]
    return spec, base / "whole"


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_an_interrupted_study_resumes_to_the_trials_and_summary_of_one_left_alone(
    tmp_path: Path, how: int, study_left_alone: tuple[Path, Path]
) -> None:
    (spec, whole_dir), trials = study_left_alone, 6

    cut, log = tmp_path / "cut", tmp_path / "cut.log"
    with log.open("w") as stderr:
        proc = start("tune", spec, *LIMIT, "--out", cut, "--trials", trials, stdout=stderr, stderr=stderr)
        wait_for_complete_trials(proc, cut / "optuna.db", f"sqlite:///{cut / 'optuna.db'}", 2, log)
        proc.send_signal(how)
        proc.wait(timeout=120)
    if how == signal.SIGINT:
        assert proc.returncode == 130, log.read_text()[-3000:]
        said = log.read_text().strip().splitlines()[-1]
        assert "finished trials saved in" in said and "--resume" in said and "Traceback" not in log.read_text()
    else:
        assert proc.returncode == -signal.SIGKILL
    again = call("tune", spec, *LIMIT, "--out", cut, "--trials", trials, "--resume", "--json")
    assert again.returncode == 0, again.stderr[-3000:]

    assert trials_of(cut) == trials_of(whole_dir)  # the same configurations, scores and costs
    a, b = (json.loads((d / "summary.json").read_text()) for d in (whole_dir, cut))
    assert comparable(a) == comparable(b)
    assert (cut / "best.yaml").read_text() == (whole_dir / "best.yaml").read_text()
