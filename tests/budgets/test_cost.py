"""The cost model against torch's FlopCounterMode on real forward passes."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache

from budgets import BudgetError, CostModel

FAMILIES = {
    "llama-gqa": dict(
        model_type="llama",
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=300,
        max_position_embeddings=512,
    ),
    "gpt2": dict(model_type="gpt2", n_embd=64, n_layer=3, n_head=4, vocab_size=300, n_positions=512),
    "qwen2-gqa": dict(
        model_type="qwen2",
        hidden_size=96,
        intermediate_size=200,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,
        vocab_size=400,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    ),
    "opt": dict(
        model_type="opt",
        hidden_size=64,
        ffn_dim=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        vocab_size=300,
        max_position_embeddings=512,
        word_embed_proj_dim=64,
    ),
    "gemma": dict(
        model_type="gemma",
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=48,
        vocab_size=300,
        max_position_embeddings=512,
    ),
}


def build(spec):
    spec = dict(spec)
    cfg = AutoConfig.for_model(spec.pop("model_type"), **spec)
    cfg._attn_implementation = "eager"  # CPU SDPA kernels are invisible to FlopCounterMode
    torch.manual_seed(0)
    return cfg, AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval()


def counted(fn):
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("prompt,cached", [(48, 0), (20, 30)])
def test_prefill_and_decode_flops_within_ten_percent_of_flop_counter(family, prompt, cached):
    cfg, model = build(FAMILIES[family])
    cost = CostModel.from_config(cfg)
    assert cost.params == sum(p.numel() for p in model.parameters())
    ids = torch.randint(3, 200, (1, cached + prompt))
    with torch.no_grad():
        cache = DynamicCache()
        if cached:
            model(ids[:, :cached], cache=cache)
        got = counted(lambda: model(ids[:, cached:], cache=cache))
        # eager attention computes the full score matrix; a plain forward computes logits everywhere
        est = cost.prefill_flops(prompt, cached, logit_positions=None, causal=False)
        assert est == pytest.approx(got, rel=0.10)
        step = counted(lambda: model(torch.tensor([[5]]), cache=cache))
        assert cost.decode_flops(1, cached + prompt) == pytest.approx(step, rel=0.10)


@pytest.mark.parametrize("name", ["tiny-l", "tiny-s"])
def test_embedded_models_match_the_counter_exactly_enough(name):
    from archon.core.models import resolve_model

    model = AutoModelForCausalLM.from_pretrained(resolve_model(name), attn_implementation="eager").eval()
    cost = CostModel.from_config(name)
    ids = torch.randint(3, 90, (1, 64))
    with torch.no_grad():
        cache = DynamicCache()
        got = counted(lambda: model(ids, cache=cache))
        assert cost.prefill_flops(64, logit_positions=None, causal=False) == pytest.approx(got, rel=0.01)
        steps = 0
        for _ in range(8):
            steps += counted(lambda: model(torch.tensor([[7]]), cache=cache))
        assert cost.decode_flops(8, 64) == pytest.approx(steps, rel=0.01)


def test_causal_counting_is_about_half_the_dense_score_matrix():
    cost = CostModel.from_config("tiny-l")
    dense, causal = cost.attention_flops(1000, 0, causal=False), cost.attention_flops(1000, 0)
    assert causal == pytest.approx(dense / 2, rel=0.01)
    assert cost.attention_flops(10, 500) > cost.attention_flops(10, 0)  # grows with the context


def test_shared_prompt_is_charged_once_and_cached_tokens_are_free():
    cost = CostModel.from_config("tiny-l")
    one = cost.generation_flops(200, [50])
    eight = cost.generation_flops(200, [50] * 8)
    assert eight < 8 * one  # one prefill for the eight samples
    assert eight - one == 7 * cost.decode_flops(49, 200)
    assert cost.generation_flops(200, [50], cached_tokens=190) < one


def test_bytes_per_decode_step_read_weights_once_and_every_cache():
    cost = CostModel.from_config("tiny-l")
    assert cost.kv_bytes_per_token == 2 * 4 * 2 * 32 * 4
    assert cost.decode_bytes(1, 0) == cost.params * 4
    assert cost.decode_bytes(16, 100) - cost.decode_bytes(8, 100) == 8 * 100 * cost.kv_bytes_per_token


def test_unknown_config_is_a_clear_error():
    with pytest.raises(BudgetError, match="no config, model directory or embedded model name"):
        CostModel.from_config("tiny-xl")
