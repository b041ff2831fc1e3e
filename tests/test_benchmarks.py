"""The benchmark scripts run end to end (small sizes) and write their figures; no timing is asserted."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_gpu_check_runs_its_correctness_checks_on_the_cpu():
    done = run("benchmarks/gpu_check.py", "--device", "cpu", "--repeats", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((ROOT / "benchmarks/results/gpu_check_cpu.json").read_text())
    assert {c["check"] for c in report["checks"]} >= {"greedy equals model.generate", "seeded samples reproducible"}
    assert all(c["passed"] for c in report["checks"])
    assert [r["n"] for r in report["n_samples"]] == [1, 4, 16, 64]


def test_engine_benchmark_quick_run_writes_every_case():
    done = run("benchmarks/engines.py", "--quick")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((ROOT / "benchmarks/results/engines_quick.json").read_text())
    cases = {(r["case"], r["variant"]) for r in report["rows"]}
    assert cases == {
        ("samples", "generate"),
        ("samples", "engine"),
        ("concurrent", "sequential"),
        ("concurrent", "concurrent"),
        ("prefix", "no-cache"),
        ("prefix", "cache"),
    }
    prefix = {r["variant"]: r for r in report["rows"] if r["case"] == "prefix"}
    assert prefix["cache"]["prefill_tokens"] < prefix["no-cache"]["prefill_tokens"]
    assert prefix["cache"]["cached_tokens"] > 0 == prefix["no-cache"]["cached_tokens"]


def test_verifier_benchmark_quick_run_writes_its_figures():
    done = run("benchmarks/verifiers.py", "--quick", "--repeats", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads((ROOT / "benchmarks/results/verifiers_quick.json").read_text())["figures"]
    assert 0.5 < figures["tiny-prm step AUC"] <= 1.0 and figures["steps"] > 100
    assert figures["steps/s batched"] > 0 and figures["steps/s one at a time"] > 0


def test_pipeline_benchmark_quick_run_writes_every_example():
    done = run("benchmarks/pipelines.py", "--quick")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((ROOT / "benchmarks/results/pipelines_quick.json").read_text())
    assert set(report["examples"]) == {"greedy", "best_of_n", "self_consistency", "ensemble"}
    for row in report["examples"].values():
        assert 0 <= row["accuracy"] <= row["coverage"] <= 1 and row["flops_per_problem"] > 0
    assert report["best_of_n_one_at_a_time_seconds"] > 0
