"""Playing plugin author: the worked example of docs/operators.md, installed as a package outside the tree.

The package is written from the page's code block into a temporary directory with a ``.dist-info``
holding its entry point (what ``pip install`` would leave), and found through ``PYTHONPATH``: the
real entry-point machinery, no monkeypatching. Its verifier parameter is called ``prm``.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operators.md"
ARCHON = [sys.executable, "-m", "archon.cli"]


def blocks(kind: str) -> dict[str, str]:
    """The page's code blocks of one language that name a file, by file name."""
    text = DOC.read_text()
    return {m[1]: m[2] for m in re.finditer(rf"```{kind} file=(\S+)\n(.*?)```", text, flags=re.S)}


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site directory holding the docs' plugin package and its entry point."""
    site = tmp_path_factory.mktemp("site")
    for name, code in blocks("python").items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(code)
    info = site / "archon_rounds-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: archon-rounds\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[archon.operators]\nrounds = archon_rounds\n")
    return site


def archon(site: Path, *args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*ARCHON, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd or ROOT, timeout=900
    )


def spec_file(tmp_path: Path, name: str, **params: object) -> Path:
    spec = yaml.safe_load(blocks("yaml")["rounds.yaml"])
    spec["pipeline"][0]["params"].update(params)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def test_the_docs_example_is_complete() -> None:
    assert "archon_rounds/__init__.py" in blocks("python") and "rounds.yaml" in blocks("yaml")
    assert 'rounds = "archon_rounds"' in DOC.read_text()  # the entry point the test declares


def test_the_plugin_operator_is_listed_with_its_params(plugin: Path) -> None:
    out = archon(plugin, "ops", "--json")
    assert out.returncode == 0, out.stderr
    ops = {o["name"]: o for o in json.loads(out.stdout)["operators"]}
    entry = ops["best_of_rounds"]
    assert entry["module"] == "archon_rounds" and entry["summary"].startswith("Sample in rounds")
    params = {p["name"]: p for p in entry["params"]}
    assert params["prm"]["reference"] == "verifier" and params["policy"]["reference"] == "engine"
    assert params["rounds"]["cost_growth"] == 1.0 and params["threshold"]["cost_growth"] is None
    assert "best_of_n" in ops  # the built-in ones are there too


def test_validate_rejects_an_undeclared_verifier_whatever_the_parameter_is_called(plugin: Path, tmp_path: Path):
    good = archon(plugin, "validate", spec_file(tmp_path, "good.yaml"))
    assert good.returncode == 0 and good.stdout.strip() == "ok", good.stderr
    bad = archon(plugin, "validate", spec_file(tmp_path, "bad.yaml", prm="prn"))
    assert bad.returncode == 1
    assert "pipeline[0].params.prm: no verifier 'prn'; did you mean 'prm'?" in bad.stderr
    assert "Traceback" not in bad.stderr
    without = subprocess.run(  # without the plugin the op is unknown, in validation as everywhere
        [*ARCHON, "validate", str(spec_file(tmp_path, "good.yaml"))], capture_output=True, text=True, cwd=ROOT
    )
    assert without.returncode == 1 and "unknown op 'best_of_rounds'" in without.stderr


@pytest.mark.slow
def test_run_runs_the_plugin_operator(plugin: Path, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, "run.yaml", rounds=2, per_round=2, threshold=1.0, max_tokens=96)
    out = archon(plugin, "run", spec, "--limit", 3, "--json", "--out", tmp_path / "run")
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)
    assert summary["problems"] == 3 and summary["errors"] == 0 and summary["per_problem"]["flops"] > 0
    records = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    for r in records:
        event = next(e for e in r["trace"] if e["op"] == "best_of_rounds")
        assert event["rounds"] == 2  # a threshold of 1.0 is never reached by a probability below 1
        assert len(r["candidates"]) == 4 and all("prm" in c["scores"] for c in r["candidates"])
        top = r["candidates"][0]["scores"]["prm"]
        assert top == max(c["scores"]["prm"] for c in r["candidates"])


@pytest.mark.slow
def test_tune_repairs_the_plugin_operator_by_its_declared_cost_growth(plugin: Path, tmp_path: Path) -> None:
    """A trial over the budget is retried with rounds and per_round each scaled by sqrt(limit / cost)."""
    tuned = {"tune": {"type": "int", "low": 1, "high": 8}}
    space = spec_file(tmp_path, "space.yaml", rounds=tuned, per_round=tuned, threshold=1.0, max_tokens=64)

    def study(out: str, *args: object) -> optuna.Study:
        # seed 6: the first proposal is (4, 4), which a repair can scale down (a knob at 1 could not be)
        run = archon(plugin, "tune", space, "--limit", 2, "--seed", 6, "--out", tmp_path / out, "--json", *args)
        assert run.returncode in (0, 1), run.stderr[-2000:]  # 1: no trial fitted the budget
        return optuna.load_study(study_name="space", storage=f"sqlite:///{tmp_path / out / 'optuna.db'}")

    probe = study("probe", "--trials", 1).trials[0]  # the first trial, and what it costs
    limit = 0.3 * probe.user_attrs["flops"]
    trials = study("tight", "--trials", 2, "--budget-flops", limit).trials
    first, repair = trials[0], trials[1]
    assert first.params == probe.params and first.user_attrs["feasible"] is False
    assert repair.user_attrs["repair_of"] == 0
    factor = math.sqrt(limit / first.user_attrs["flops"])
    assert factor == pytest.approx(math.sqrt(0.3))
    expected = {k: min(int(v * factor), v - 1) for k, v in first.params.items()}
    assert repair.params == expected
    linear = {k: int(v * 0.3) for k, v in first.params.items()}
    assert expected != linear or all(v <= 2 for v in first.params.values())  # the declared growth mattered
