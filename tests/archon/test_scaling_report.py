"""``archon report RUN_DIR...``: coverage and majority@k against samples and FLOPs, with the power-law fit."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archon import data
from archon.cli import app
from archon.runtime import Runner
from archon.scaling_report import fit_coverage, load_run
from archon.spec import parse_spec


def _run(model: str, out: Path, n: int = 8) -> None:
    spec = {
        "engines": {"policy": {"model": model}},
        "budget": {"hardware": "h100"},
        "pipeline": [{"id": "draw", "op": "sample",
                      "params": {"engine": "policy", "n": n, "temperature": 1.0, "max_tokens": 64}}],
    }  # fmt: skip
    runner = Runner(parse_spec(spec), seed=0)
    try:
        asyncio.run(runner.run(data.load("arith", "dev")[:4], out=out))
    finally:
        asyncio.run(runner.aclose())


def test_the_fit_recovers_an_exponentiated_power_law_and_refuses_too_few_points() -> None:
    ks = [1, 2, 4, 8, 16, 64, 256]
    fit = fit_coverage(ks, [math.exp(-2.5 * k**-0.3) for k in ks])
    assert fit is not None and fit["a"] == pytest.approx(-2.5, rel=1e-3) and fit["b"] == pytest.approx(-0.3, rel=1e-3)
    assert fit_coverage([1, 2, 4], [0.0, 0.0, 0.5]) is None


def test_report_draws_several_runs_on_one_figure(tmp_path: Path) -> None:
    _run("tiny-l", tmp_path / "tiny-l")
    _run("tiny-s", tmp_path / "tiny-s")
    result = CliRunner().invoke(app, ["report", str(tmp_path / "tiny-l"), str(tmp_path / "tiny-s"),
                                      "--out", str(tmp_path / "fig")])  # fmt: skip
    assert result.exit_code == 0, result.output
    png, html = tmp_path / "fig" / "scaling.png", tmp_path / "fig" / "scaling.html"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    page = html.read_text()
    assert "tiny-l coverage" in page and "tiny-s majority@k" in page and "<script src=" not in page  # self-contained
    report = json.loads((tmp_path / "fig" / "scaling.json").read_text())
    assert [r["name"] for r in report["runs"]] == ["tiny-l", "tiny-s"]
    large = load_run(tmp_path / "tiny-l")
    assert large.k == [1, 2, 4, 8] and large.coverage == sorted(large.coverage)  # coverage never falls with k
    assert large.flops[-1] == pytest.approx(2 * large.flops[-2]) and large.flops[0] > 0
    summary = json.loads((tmp_path / "tiny-l" / "summary.json").read_text())
    assert report["runs"][0]["pass@k"] == summary["scaling"]["pass@k"]


def test_report_refuses_a_directory_that_is_not_a_run_in_one_line(tmp_path: Path) -> None:
    from tests.archon.test_cli import archon

    _run("tiny-s", tmp_path / "run", n=2)
    (tmp_path / "empty").mkdir()
    out = archon("report", str(tmp_path / "run"), str(tmp_path / "empty"))
    assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1
    assert "empty: is not a run directory" in out.stderr
    (tmp_path / "greedy").mkdir()
    (tmp_path / "greedy" / "summary.json").write_text(json.dumps({"scaling": None}))
    out = archon("report", str(tmp_path / "greedy"))
    assert out.returncode == 1 and "no scaling curves" in out.stderr and "Traceback" not in out.stderr
