"""The console script, run as a real subprocess."""

import os
import shutil
import subprocess
import sys

import pytest

from archon import __version__


def archon(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("archon", path=os.path.dirname(sys.executable))
    cmd = [exe] if exe else [sys.executable, "-m", "archon"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)


def test_version():
    out = archon("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"archon {__version__}"


def test_models_lists_every_embedded_model_with_its_size():
    out = archon("models")
    assert out.returncode == 0, out.stderr
    for name in ("tiny-l", "tiny-s", "tiny-prm", "tiny-prm-weak", "tiny-orm"):
        assert name in out.stdout
    assert "LlamaForCausalLM" in out.stdout and "MB" in out.stdout


def test_datasets_lists_splits_and_sizes():
    out = archon("datasets")
    assert out.returncode == 0, out.stderr
    assert "arith" in out.stdout and "facts" in out.stdout
    assert "1,000" in out.stdout and "2,320" in out.stdout and "corpus" in out.stdout
    assert "multihop_dev" in out.stdout and "multihop_test" in out.stdout


def test_unknown_command_fails_without_a_traceback():
    out = archon("frobnicate")
    assert out.returncode != 0
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_cost_prints_flops_and_latency_on_every_profile():
    from budgets import CostModel

    out = archon("cost", "tiny-l", "--prompt", "256", "--generate", "64", "--n", "16")
    assert out.returncode == 0, out.stderr
    flops = CostModel.from_config("tiny-l").generation_flops(256, [64] * 16)
    assert f"{flops:.4g} FLOPs" in out.stdout
    for hw in ("h100", "a100", "l4", "cpu"):
        assert hw in out.stdout


def test_cost_of_an_unknown_model_is_one_line_and_exit_1():
    out = archon("cost", "tiny-xl")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "tiny-xl" in out.stderr


def test_run_tables_cut_nothing_in_a_pipe():
    greedy = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "greedy.yaml")
    out = archon("run", greedy, "--limit", "2")
    assert out.returncode == 0, out.stderr
    assert "Cost by node" in out.stdout and "generated" in out.stdout and "FLOPs / problem" in out.stdout
    assert "…" not in out.stdout  # neither headers nor numbers cut at 80 columns
    assert "Loading weights" not in out.stderr and "it/s" not in out.stderr  # no library progress bars
