"""Hardware profiles and roofline latency."""

import subprocess
import sys

import pytest
import yaml

from budgets import CostModel, ProfileError, load_profiles, profile
from budgets.hardware import HardwareProfile, measure_local, save_profile


def test_shipped_profiles_cover_the_named_gpus_and_a_cpu():
    profiles = load_profiles()
    assert {"h100", "a100", "l4", "cpu"} <= set(profiles)
    assert profiles["h100"].peak_flops("bfloat16") > profiles["a100"].peak_flops("bfloat16") > 0
    assert profiles["l4"].peak_flops("int4") == profiles["l4"].peak_flops("float32")  # falls back


def test_roofline_decode_is_memory_bound_and_prefill_compute_bound():
    cost = CostModel.from_config("tiny-l")
    h100 = profile("h100")
    one_step = h100.seconds(cost.decode_flops(1, 100), cost.decode_bytes(1, 101), "bfloat16")
    assert one_step == pytest.approx(cost.decode_bytes(1, 101) / 3350e9)  # bytes bound
    big = cost.prefill_flops(100_000) * 1000  # an absurd prefill: arithmetic bound
    assert h100.seconds(big, 1.0, "bfloat16") == pytest.approx(big / 989e12)


def test_call_latency_grows_with_samples_and_length_and_is_deterministic():
    cost = CostModel.from_config("tiny-l")
    a100 = profile("a100")
    base = a100.call_seconds(cost, 256, [64])
    assert a100.call_seconds(cost, 256, [64] * 16) > base
    assert a100.call_seconds(cost, 256, [128]) > base
    assert a100.call_seconds(cost, 256, [64], cached_tokens=255) < base
    assert a100.call_seconds(cost, 256, [64]) == base
    assert profile("l4").call_seconds(cost, 256, [64]) > base  # slower memory


def test_user_profiles_add_and_override(tmp_path, monkeypatch):
    f = tmp_path / "hw.yaml"
    f.write_text(
        yaml.safe_dump(
            {
                "profiles": {
                    "mine": {"peak_tflops": {"float32": 1}, "bandwidth_gbs": 10},
                    "h100": {"peak_tflops": {"bfloat16": 1}, "bandwidth_gbs": 1},
                }
            }
        )
    )
    monkeypatch.setenv("ARCHON_HARDWARE", str(f))
    profiles = load_profiles()
    assert profiles["mine"].peak_flops("float32") == 1e12
    assert profiles["h100"].bandwidth_gbs == 1
    with pytest.raises(ProfileError, match="unknown hardware profile 'h200'; known: a100, cpu, h100, l4, mine"):
        profile("h200")


def test_malformed_profiles_name_the_file_and_the_entry(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("profiles:\n  broken:\n    bandwidth_gbs: 3\n")
    with pytest.raises(ProfileError, match=r"bad.yaml: profiles.broken: needs peak_tflops"):
        load_profiles(f)


def test_measuring_this_machine_writes_a_usable_profile(tmp_path):
    p = measure_local("here", size=256, megabytes=8, repeats=2)
    assert p.peak_flops("float32") > 1e8 and p.bandwidth_gbs > 0.1
    path = save_profile(p, tmp_path / "mine.yaml")
    assert load_profiles(path)["here"].bandwidth_gbs == p.bandwidth_gbs


@pytest.mark.slow
def test_cli_lists_and_measures(tmp_path):
    env_file = tmp_path / "hw.yaml"
    code = "from archon.cli import run; run()"
    listed = subprocess.run([sys.executable, "-c", code, "hardware", "list"], capture_output=True, text=True)
    assert listed.returncode == 0 and "h100" in listed.stdout
    measured = subprocess.run(
        [sys.executable, "-c", code, "hardware", "measure", "--name", "box", "--out", str(env_file)],
        capture_output=True,
        text=True,
    )
    assert measured.returncode == 0, measured.stderr
    assert isinstance(load_profiles(env_file)["box"], HardwareProfile)
