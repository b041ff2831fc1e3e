"""Every training stage runs a few steps (the full run is `python -m archon.models.training`)."""

import json
import subprocess
import sys

from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer


def test_training_scripts_smoke(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "archon.models.training", "--smoke", "--out", str(tmp_path), "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    timings = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(timings) == {"tiny-l", "tiny-s", "samples", "tiny-prm", "tiny-orm"}
    for name in ("tiny-l", "tiny-s", "tiny-prm", "tiny-orm"):
        assert (tmp_path / name / "model.safetensors").is_file()
        AutoTokenizer.from_pretrained(tmp_path / name)
    AutoModelForCausalLM.from_pretrained(tmp_path / "tiny-s")
    AutoModelForTokenClassification.from_pretrained(tmp_path / "tiny-prm")
    assert json.loads((tmp_path / "tiny-orm" / "reward_config.json").read_text())["kind"] == "outcome"


def test_shipped_models_were_trained_with_the_scripts_specs():
    from dataclasses import asdict

    from archon import models
    from archon.models.training.__main__ import SPECS

    for name, phases in SPECS.items():
        record = json.loads((models.path(name) / "training.json").read_text())
        assert [p["spec"] for p in record["phases"]] == [asdict(s) for s in phases], name
