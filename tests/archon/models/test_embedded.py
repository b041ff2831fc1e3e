"""Each embedded model and the tokenizer load with the standard Auto classes and run."""

import json
import re

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from archon import models
from archon.core import ModelNotFoundError

VERIFIERS = {"tiny-prm": "process", "tiny-prm-weak": "process", "tiny-orm": "outcome"}
QUESTION = "Evaluate left to right: 12 + 7 * 3"


def chat_ids(tok, content: str, *, generation: bool = True) -> list[int]:
    out = tok.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=generation)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def test_embedded_models_fit_the_size_budget():
    total = sum(models.info(n).bytes_on_disk for n in models.names())
    assert total <= 40 * 1024 * 1024
    assert set(models.names()) == {"tiny-l", "tiny-s", *VERIFIERS}


def test_tokenizer_is_character_level_with_specials_and_chat_template():
    tok = AutoTokenizer.from_pretrained(models.path("tiny-l"))
    assert tok.bos_token == "<s>" and tok.eos_token == "</s>" and tok.pad_token == "<pad>"
    text = "12 + 7 = 19\n#### 19"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)
    assert tok.decode(ids) == text
    rendered = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert rendered == "<s><|user|>hi\n<|assistant|>"


@pytest.mark.parametrize("name", models.names())
def test_model_loads_and_runs_a_forward_pass(name):
    model = AutoModelForCausalLM.from_pretrained(models.path(name)).eval()
    tok = AutoTokenizer.from_pretrained(models.path(name))
    assert model.config.max_position_embeddings >= (512 if name in VERIFIERS else 2048)
    ids = torch.tensor([chat_ids(tok, QUESTION)])
    with torch.no_grad():
        out = model(input_ids=ids).logits
    assert torch.isfinite(out).all()
    assert out.shape == (1, ids.shape[1], len(tok))
    if name in VERIFIERS:
        cfg = json.loads((models.path(name) / "reward_config.json").read_text())
        assert cfg["kind"] == VERIFIERS[name] and cfg["read"] == "teacher_forced"


@pytest.mark.parametrize("name", ["tiny-l", "tiny-s"])
def test_generation_stops_at_eos(name):
    model = AutoModelForCausalLM.from_pretrained(models.path(name)).eval()
    tok = AutoTokenizer.from_pretrained(models.path(name))
    ids = torch.tensor([chat_ids(tok, "Evaluate left to right: 3 + 4")])
    out = model.generate(input_ids=ids, max_new_tokens=200, do_sample=False, pad_token_id=tok.pad_token_id)
    new = out[0, ids.shape[1] :].tolist()
    assert tok.eos_token_id in new, "the model never ended its answer"
    assert len(new) < 200
    assert new.index(tok.eos_token_id) == len(new) - 1  # nothing generated after EOS
    text = tok.decode(new, skip_special_tokens=True)
    assert text.startswith("3 ")
    if name == "tiny-l":  # the small model is too weak to keep the format reliably
        assert re.fullmatch(r"3 \+ 4 = \d+\n#### \d+", text), text


def test_long_context_of_eight_documents_fits():
    from archon import data
    from archon.data.facts import context_prompt

    tok = AutoTokenizer.from_pretrained(models.path("tiny-l"))
    docs = [d.text for d in data.corpus("facts")[:8]]
    ids = chat_ids(tok, context_prompt("Where was X born?", docs))
    assert len(ids) < 2048
    model = AutoModelForCausalLM.from_pretrained(models.path("tiny-s")).eval()
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=torch.tensor([ids])).logits).all()


def test_names_resolve_to_directories_and_errors_suggest(tmp_path):
    assert models.resolve("tiny-l") == str(models.path("tiny-l"))
    assert models.resolve(str(models.path("tiny-s"))) == str(models.path("tiny-s"))
    assert models.resolve("meta-llama/Llama-3.2-1B") == "meta-llama/Llama-3.2-1B"
    with pytest.raises(ModelNotFoundError, match="did you mean 'tiny-l'"):
        models.path("tiny-ll")
    with pytest.raises(ModelNotFoundError, match=r"has no config\.json"):
        models.resolve(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="not an embedded model"):
        models.resolve("no-such-model")
