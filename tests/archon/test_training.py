"""Every training stage runs a few steps (the full run is `python -m archon.models.training`)."""

import json
import subprocess
import sys

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer


@pytest.mark.slow
def test_training_scripts_smoke(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "archon.models.training", "--smoke", "--out", str(tmp_path), "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    timings = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(timings) == {"tiny-l", "tiny-s", "tiny-prm"}
    for name in ("tiny-l", "tiny-s", "tiny-prm", "tiny-prm-weak", "tiny-orm"):
        assert (tmp_path / name / "model.safetensors").is_file()
        AutoTokenizer.from_pretrained(tmp_path / name)
        AutoModelForCausalLM.from_pretrained(tmp_path / name)
    for name, kind in (("tiny-prm", "process"), ("tiny-prm-weak", "process"), ("tiny-orm", "outcome")):
        reading = json.loads((tmp_path / name / "reward_config.json").read_text())
        assert reading["kind"] == kind and reading["read"] == "teacher_forced"


def test_shipped_models_were_trained_with_the_scripts_specs():
    from dataclasses import asdict, fields

    from archon import models
    from archon.models.training.__main__ import CHECKERS, OUTCOME, SPECS, WEAK
    from archon.models.training.lm import LMSpec

    defaults = {f.name: f.default for f in fields(LMSpec)}
    for name, phases in SPECS.items():
        record = json.loads((models.path(name) / "training.json").read_text())
        # a spec field added after a model was trained is recorded when it is not at its default
        recorded = [{**defaults, **p["spec"]} for p in record["phases"]]
        assert recorded == [json.loads(json.dumps(asdict(s))) for s in phases], name

    def trained(spec: dict) -> dict:  # which checkpoints a run saves does not change what it trains
        return {k: v for k, v in spec.items() if k != "steps_kept"}

    for name, phases in CHECKERS.items():
        record = json.loads((models.path(name) / "training.json").read_text())
        assert [trained(p["spec"]) for p in record["phases"]] == [
            trained(json.loads(json.dumps(asdict(s)))) for s in phases
        ], name
    weak = json.loads((models.path(f"{WEAK[0]}-weak") / "training.json").read_text())
    assert [trained(p["spec"]) for p in weak["phases"]] == [
        trained(json.loads(json.dumps(asdict(s)))) for s in CHECKERS[WEAK[0]][: WEAK[1]]
    ]
    assert weak["step"] == WEAK[2] and WEAK[2] in CHECKERS[WEAK[0]][WEAK[1] - 1].steps_kept
    for name, source in OUTCOME.items():  # the same weights, read as an outcome verifier
        same = (models.path(name) / "model.safetensors").read_bytes() == (
            models.path(source) / "model.safetensors"
        ).read_bytes()
        reading = json.loads((models.path(name) / "reward_config.json").read_text())
        assert same and reading["kind"] == "outcome"
