"""Run directories and failures said out loud: refuse what would lose results, resume exactly, exit non-zero."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archon.rundir import RunDirError, open_run, read_records

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ID = {"spec": "abc", "seed": 0}


def archon(*args: object, **kw) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "archon.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        **kw,
    )


def test_a_directory_holding_results_needs_resume_or_force(tmp_path: Path) -> None:
    assert open_run(tmp_path / "r", ID, resume=False) == []
    (tmp_path / "r" / "results.jsonl").write_text('{"id": "a"}\n')
    with pytest.raises(RunDirError, match="--resume continues it, --force starts over"):
        open_run(tmp_path / "r", ID, resume=False)
    assert open_run(tmp_path / "r", ID, resume=True) == [{"id": "a"}]
    with pytest.raises(RunDirError, match="was run with another seed"):
        open_run(tmp_path / "r", {**ID, "seed": 1}, resume=True)
    with pytest.raises(RunDirError, match="was run with another spec"):
        open_run(tmp_path / "r", {**ID, "spec": "other"}, resume=True)
    assert open_run(tmp_path / "r", {**ID, "seed": 1}, resume=False, force=True) == []
    assert not (tmp_path / "r" / "results.jsonl").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file, not a directory"):
        open_run(tmp_path / "file", ID, resume=False)


def test_a_torn_last_record_is_dropped_and_damage_elsewhere_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "ans')  # cut short by a crash
    assert read_records(path) == [{"id": "a"}, {"id": "b"}]
    assert path.read_text() == '{"id": "a"}\n{"id": "b"}\n'  # the next record is appended cleanly
    path.write_text('{"id": "a"}\n{"id": \n{"id": "c"}\n')
    with pytest.raises(RunDirError, match=r"results.jsonl:2: not a JSON record"):
        read_records(path)


def test_a_missing_model_fails_before_the_first_problem_in_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text((EXAMPLES / "best_of_n.yaml").read_text().replace("model: tiny-orm", f"model: {tmp_path}/none"))
    out = archon("run", spec, "--limit", 2, "--out", tmp_path / "run")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert f"{spec}: verifiers.orm" in " ".join(out.stderr.split()) and "none" in out.stderr
    assert not (tmp_path / "run" / "results.jsonl").exists()  # nothing ran
    broken = tmp_path / "broken-model"  # found (it has a config.json), but cannot be loaded
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "nosuch-architecture"}')
    spec.write_text((EXAMPLES / "greedy.yaml").read_text().replace("model: tiny-l}", f"model: {broken}}}"))
    out = archon("run", spec, "--limit", 2)
    assert out.returncode == 1 and "engines.policy:" in out.stderr and "nosuch-architecture" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_problems_that_fail_make_the_run_fail_and_say_which(tmp_path: Path) -> None:
    rows = [
        {"id": "fine", "question": "Evaluate left to right: 5 + 8 - 8", "answer": "5"},
        {"id": "huge", "question": "Evaluate left to right: " + " + ".join(["1"] * 2000), "answer": "2000"},
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = archon("run", EXAMPLES / "greedy.yaml", "--dataset", data, "--json", "--out", tmp_path / "run")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    summary = json.loads(out.stdout)
    assert summary["errors"] == 1 and summary["first_error"]["id"] == "huge"
    assert "1 of 2 problems failed; the first, huge:" in out.stderr and "context" in out.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["errors"] == 1


def _default_sigint() -> None:
    """In the child: Ctrl-C as a terminal gives it, even when this test runs in a background job (which ignores it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _without_wall_times(data: object) -> object:
    """``data`` without the measured wall times (``seconds``): the one thing a rerun cannot repeat."""
    if isinstance(data, dict):
        return {k: _without_wall_times(v) for k, v in data.items() if k != "seconds"}
    if isinstance(data, list):
        return [_without_wall_times(v) for v in data]
    return data


RESUMED = 150
"""Problems of the interrupted runs: more than run at once, so that the signal lands mid-run."""


@pytest.fixture(scope="module")
def run_left_alone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of greedy on 150 problems when nothing interrupts it (shared by both signals)."""
    whole = tmp_path_factory.mktemp("alone") / "whole"
    done = archon("run", EXAMPLES / "greedy.yaml", "--limit", RESUMED, "--out", whole, "--json")
    assert done.returncode == 0, done.stderr
    return whole


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_an_interrupted_run_resumes_to_the_records_and_summary_of_one_left_alone(
    tmp_path: Path, how: int, run_left_alone: Path
) -> None:
    spec, n = EXAMPLES / "greedy.yaml", RESUMED
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "archon.cli", "run", str(spec), "--limit", str(n), "--out", str(tmp_path / "cut")]
    proc = subprocess.Popen(
        [*cmd, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_default_sigint
    )
    results = tmp_path / "cut" / "results.jsonl"
    deadline = time.monotonic() + 300
    while not (results.is_file() and results.read_text().count("\n") >= 2) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(how)
    _, err = proc.communicate(timeout=120)
    if how == signal.SIGINT:
        assert proc.returncode == 130, err
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 3
        assert "continue with --resume" in err and f"of {n} problems" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    saved = results.read_text().count("\n")
    assert 2 <= saved < n
    again = archon(*cmd[3:], "--resume", "--json")
    assert again.returncode == 0, again.stderr

    def records(d: Path) -> dict[str, object]:
        lines = (d / "results.jsonl").read_text().splitlines()
        return {r["id"]: _without_wall_times(r) for r in map(json.loads, lines)}

    cut = tmp_path / "cut"
    assert records(cut) == records(run_left_alone)  # every problem once, with the same answer, samples and cost
    a, b = (json.loads((d / "summary.json").read_text()) for d in (run_left_alone, cut))
    assert b["problems"] == n and _without_wall_times(a) == _without_wall_times(b)
