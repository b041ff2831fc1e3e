"""The benchmark scripts run end to end (small sizes) and write their figures; no timing is asserted.

Every script writes into a temporary directory (``--results``), never into ``benchmarks/results/``.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_gpu_check_runs_its_correctness_checks_on_the_cpu(tmp_path):
    done = run("benchmarks/gpu_check.py", "--device", "cpu", "--repeats", "1", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "gpu_check_cpu.json").read_text())
    assert {c["check"] for c in report["checks"]} >= {"greedy equals model.generate", "seeded samples reproducible"}
    assert all(c["passed"] for c in report["checks"])
    assert [r["n"] for r in report["n_samples"]] == [1, 4, 16, 64]


def test_engine_benchmark_quick_run_writes_every_case(tmp_path):
    done = run("benchmarks/engines.py", "--quick", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "engines_quick.json").read_text())
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


def test_verifier_benchmark_quick_run_writes_its_figures(tmp_path):
    done = run("benchmarks/verifiers.py", "--quick", "--repeats", "1", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads((tmp_path / "verifiers_quick.json").read_text())["figures"]
    assert 0.5 < figures["tiny-prm step AUC"] <= 1.0 and figures["steps"] > 100
    assert figures["steps/s batched"] > 0 and figures["steps/s one at a time"] > 0


def test_pipeline_benchmark_quick_run_writes_every_example(tmp_path):
    done = run("benchmarks/pipelines.py", "--quick", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "pipelines_quick.json").read_text())
    assert set(report["examples"]) == {"greedy", "best_of_n", "self_consistency", "ensemble"}
    for row in report["examples"].values():
        assert 0 <= row["accuracy"] <= row["coverage"] <= 1 and row["flops_per_problem"] > 0
    assert report["best_of_n_one_at_a_time_seconds"] > 0


def test_the_copy_error_set_copies_wrong_and_computes_right():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from selection import copy_error_set

    from archon import data
    from verifiers.arith import apply, first_wrong_step, parse_question

    problems = data.load("arith", "dev")[:200]
    cases = copy_error_set(problems)
    assert len(cases) >= 190 and {k for *_, k in cases} == {"first operand", "second operand", "operator"}
    for p, good, bad, kind in cases:
        assert good == p.metadata["solution"] and first_wrong_step(p.question, bad) is not None
        chain, lines = parse_question(p.question), bad.split("\n")
        wrong = [i for i, line in enumerate(lines[:-1]) if line != good.split("\n")[i]]
        i = wrong[0]
        a, op, x, _, c = lines[i].split()
        assert apply(int(a), op, int(x)) == int(c)  # the arithmetic of the wrong step is right
        if kind == "first operand":
            assert int(a) != chain.values()[i] and (op, int(x)) == (chain.ops[i], chain.operands[i])
        elif kind == "second operand":
            assert int(a) == chain.values()[i] and int(x) != chain.operands[i]
        else:
            assert op != chain.ops[i]
        for j in range(i + 1, len(lines) - 1):  # later steps go on, right, from the wrong value
            a2, op2, x2, _, c2 = lines[j].split()
            assert int(a2) == int(lines[j - 1].split()[-1]) and apply(int(a2), op2, int(x2)) == int(c2)
        assert lines[-1] == f"#### {lines[-2].split()[-1]}"


def test_search_benchmark_quick_run_measures_reuse_by_policy_and_prm(tmp_path):
    done = run("benchmarks/search.py", "--quick", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "search_quick.json").read_text())
    assert all(r["errors"] == 0 for r in report["rows"].values())
    for op in ("beam_16", "particles_16"):
        f = report["figures"][op]
        assert f["same_answers_as_scratch"]  # incremental PRM scores choose what scratch scores choose
        assert f["prefill_without_reuse_over_with"] > 1 and f["prm_tokens_scratch_over_incremental"] > 1


def test_search_scaling_quick_run_writes_its_grid_tables_and_plot(tmp_path):
    done = run("benchmarks/search.py", "scaling", "--quick", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "search_scaling_quick.json").read_text())
    runs = {(r["method"], r["verifier"], r["k"]) for r in report["rows"]}
    assert runs == {("greedy", "-", 1)} | {
        (m, v, k) for m in ("best_of_n", "beam_search") for v in ("prm", "noisy-0.85") for k in (2, 4)
    }
    learned = {(r["method"], r["k"]): r for r in report["rows"] if r["verifier"] == "prm"}
    noisy = {(r["method"], r["k"]): r for r in report["rows"] if r["verifier"] == "noisy-0.85"}
    for key, r in learned.items():
        assert r["errors"] == 0 and r["gflops"] > noisy[key]["gflops"] > 0  # the PRM's FLOPs are charged
        assert r["latency_ms"] > 0
    assert learned[("best_of_n", 4)]["gflops"] > learned[("best_of_n", 2)]["gflops"]
    assert {c["verifier"] for c in report["claims"]} == {"prm", "noisy-0.85"}
    assert (tmp_path / "search_scaling_quick.png").stat().st_size > 10_000
    assert "| beam_search |" in (tmp_path / "search_scaling_quick.md").read_text()
    again = run("benchmarks/search_scaling.py", "--quick", "--results", str(tmp_path))  # resumes: nothing to run
    assert again.returncode == 0 and "k=" not in again.stdout


def test_retrieval_benchmark_quick_run_writes_recall_and_the_reader_curve(tmp_path):
    done = run("benchmarks/retrieval.py", "--quick", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "retrieval_quick.json").read_text())
    assert set(report["recall"]) == {"bm25", "dense", "hybrid"}
    for row in report["recall"].values():
        assert 0 <= row["recall@1"] <= row["recall@5"] <= row["recall@20"] <= 1
    curve = report["reader"]
    assert [r["k"] for r in curve] == [0, 1, 2, 3, 5, 10]
    flops = [r["flops_per_problem"] for r in curve]
    assert flops == sorted(flops) and flops[-1] > 2 * flops[0]  # every passage is prefill the reader pays for
    assert all(r["errors"] == 0 for r in curve)
