"""Keeping a model's arith while a training phase teaches it to read: distillation on its own samples."""

from __future__ import annotations

import copy
from dataclasses import replace
from itertools import islice

import pytest
import torch

from archon.models.training.data import EOS_ID, PAD_ID, encode_prompt
from archon.models.training.lm import LMSpec, _batches, distill_step, llama_config, teacher_pool, train_lm

TINY = LMSpec(hidden=32, layers=1, heads=2, kv_heads=1, intermediate=64, steps=4, arith_batch=4, facts_batch=2)


def _model(seed: int) -> torch.nn.Module:
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(llama_config(TINY))


def test_distill_batches_come_from_the_pool_and_only_when_asked():
    pool = [([*encode_prompt("1 + 2"), 30, 31, EOS_ID], 7), ([*encode_prompt("3 * 4"), 32, EOS_ID], 7)]
    spec = replace(TINY, facts_fraction=0.0, distill_fraction=0.5)
    kinds = []
    for ids, weight, kind in islice(_batches(spec, pool), 200):
        kinds.append(kind)
        if kind == "distill":
            rows = {tuple(r[r != PAD_ID].tolist()) for r in ids}
            assert rows <= {tuple(seq) for seq, _ in pool}
            for r, row in enumerate(ids):
                length = int((row != PAD_ID).sum())
                assert weight[r, :7].sum() == 0 and bool((weight[r, 7:length] == 1).all())
    assert 60 < kinds.count("distill") < 140  # about half
    plain = [kind for _, _, kind in islice(_batches(replace(spec, distill_fraction=0.0)), 50)]
    assert "distill" not in plain


def test_distill_step_pulls_a_model_towards_the_teacher():
    teacher, student = _model(0).eval(), _model(1)
    with torch.no_grad():  # a peaked teacher (a random one is nearly uniform, like the student)
        teacher.get_input_embeddings().weight.mul_(40.0)
    ids = torch.randint(7, 100, (4, 20))
    weight = torch.ones(4, 20)
    twin = copy.deepcopy(teacher).train()
    same, _ = distill_step(twin, teacher, torch.optim.SGD(twin.parameters(), lr=0.0), ids, weight)
    assert float(same) == pytest.approx(0.0, abs=1e-6)  # a model is its own teacher: nothing to learn
    opt = torch.optim.AdamW(student.parameters(), lr=1e-2)
    first, _ = distill_step(student, teacher, opt, ids, weight)
    for _ in range(30):
        last, kl = distill_step(student, teacher, opt, ids, weight)
    assert float(first) > 0.05 and float(last) < 0.3 * float(first)
    assert kl.shape == (4, 19) and bool((kl >= -1e-6).all())


def test_the_teacher_pool_is_the_starting_models_own_arith_samples():
    teacher = _model(2).eval()
    pool = teacher_pool(teacher, replace(TINY, distill_pool=6))
    assert len(pool) == 6
    for seq, start in pool:
        assert seq[start - 1] == encode_prompt("x")[-1]  # the completion starts after <|assistant|>
        assert seq[-1] == EOS_ID


def test_distillation_needs_a_starting_model(tmp_path):
    with pytest.raises(ValueError, match="needs init"):
        train_lm(replace(TINY, distill_fraction=0.3), tmp_path / "m", log_every=0)
