"""Train a small Llama causal LM from scratch on the arith and facts training worlds.

The loss is next-token cross-entropy on the assistant's completion; on facts
examples the context documents also get a small language-modelling weight,
which teaches the model to match names (the induction behaviour it needs to
read the right document). Batches hold one kind of example each, so short
arith sequences are not padded to the length of facts contexts.

A phase may also *keep* what its starting model does on arith (``distill_fraction``):
before it trains, the starting model samples solutions to training-world arith
questions at temperature 1, and those batches train the new model to match the
starting model's next-token distributions along them (a KL term, not the gold
solutions). A reading phase then changes how the model reads documents without
moving the arith policy that the verifiers, searches and tuners are measured on.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from archon.models.training.data import BOS_ID, EOS_ID, PAD_ID, VOCAB, examples, multihop_examples
from archon.models.training.tokenizer import save_tokenizer


@dataclass(frozen=True)
class LMSpec:
    """Architecture and training schedule of one embedded LM."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    steps: int
    lr: float = 3e-3
    warmup: int = 100
    arith_batch: int = 64
    facts_batch: int = 16
    facts_fraction: float = 0.25
    copy_fraction: float = 0.0
    open_facts_fraction: float = 0.0
    lookup_fraction: float = 0.0
    multihop_fraction: float = 0.0
    distill_fraction: float = 0.0
    """Share of batches that keep the starting model's arith distribution (see the module docstring)."""
    distill_pool: int = 4096
    """How many arith solutions the starting model samples for those batches."""
    context_weight: float = 0.2
    max_distractors: int = 3
    min_distractors: int | None = None
    seed: int = 0
    context_length: int = 2048


def llama_config(spec: LMSpec):  # -> transformers.LlamaConfig
    """The Hugging Face config of a spec."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(VOCAB),
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        max_position_embeddings=spec.context_length,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
    )


def _batches(
    spec: LMSpec, pool: list[tuple[list[int], int]] | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor, str]]:
    """Endless (ids, loss weights, kind) batches, padded on the right.

    ``kind`` is ``"arith"`` (arith, copy and lookup exercises), ``"facts"`` (a document context) or
    ``"distill"`` (the starting model's own arith samples, ``pool``; only with ``spec.distill_fraction``).
    """
    rng = random.Random(spec.seed + 1)
    arith = examples(spec.seed + 2, "arith")
    facts = examples(spec.seed + 3, "facts", spec.max_distractors, spec.min_distractors)
    copy = examples(spec.seed + 4, "copy")
    open_facts = examples(spec.seed + 5, "open_facts", spec.max_distractors, spec.min_distractors)
    lookup = examples(spec.seed + 6, "lookup")
    multihop = multihop_examples(spec.seed + 7)
    kept = _cycle(pool or [], random.Random(spec.seed + 8))
    while True:
        u = rng.random()
        is_facts = u < spec.facts_fraction
        kind = "arith"
        if spec.multihop_fraction < 1 - u <= spec.multihop_fraction + spec.distill_fraction:
            # drawn just above multihop's share: the draws of phases without distillation are kept
            src, size, kind, is_facts = kept, spec.arith_batch, "distill", False
        elif 1 - u <= spec.multihop_fraction:  # drawn from the top of the range: the other kinds' draws are kept
            src, size, is_facts = multihop, spec.facts_batch, True
        elif is_facts:
            src, size = facts, spec.facts_batch
        elif u < spec.facts_fraction + spec.copy_fraction:
            src, size = copy, spec.arith_batch
        elif u < spec.facts_fraction + spec.copy_fraction + spec.open_facts_fraction:
            src, size, is_facts = open_facts, spec.facts_batch, True
        elif u < spec.facts_fraction + spec.copy_fraction + spec.open_facts_fraction + spec.lookup_fraction:
            src, size = lookup, spec.arith_batch
        else:
            src, size = arith, spec.arith_batch
        items = [next(src) for _ in range(size)]
        width = max(len(item[0]) for item in items)
        ids = torch.full((size, width), PAD_ID, dtype=torch.long)
        weight = torch.zeros((size, width), dtype=torch.float)
        for row, item in enumerate(items):
            seq, start = item[0], item[1]
            ids[row, : len(seq)] = torch.tensor(seq)
            # weight[t] applies to predicting token t from tokens < t
            weight[row, start : len(seq)] = 1.0
            if is_facts:
                weight[row, 1:start] = spec.context_weight
            if len(item) == 3:  # per-token weights of the completion (None: the context weight)
                per = [spec.context_weight if w is None else w for w in item[2][start:]]
                weight[row, start : len(seq)] = torch.tensor(per)
        yield ids, weight, "facts" if is_facts else kind


def _cycle(items: list, rng: random.Random) -> Iterator:
    """The items in a fresh random order each pass, endlessly (nothing when empty)."""
    order = list(items)
    while order:
        rng.shuffle(order)
        yield from order


def teacher_pool(teacher: torch.nn.Module, spec: LMSpec) -> list[tuple[list[int], int]]:
    """``spec.distill_pool`` arith solutions sampled by ``teacher`` at temperature 1, as (ids, completion start).

    Questions come from the training arith world (never a dev/test question); the seed is the phase's.
    """
    from archon.models.training.data import arith_example, encode_chars, encode_prompt
    from archon.models.training.sampling import sample

    rng = random.Random(spec.seed + 9)
    questions = [arith_example(rng)[0] for _ in range(spec.distill_pool)]
    texts = sample(teacher, questions, n=1, temperature=1.0, max_new_tokens=256, seed=spec.seed + 9)
    out = []
    for q, (text,) in zip(questions, texts, strict=True):
        prompt = encode_prompt(q)
        out.append(([*prompt, *encode_chars(text), EOS_ID], len(prompt)))
    return out


def train_lm(
    spec: LMSpec, out_dir: str | Path, *, init: str | Path | None = None, log_every: int = 100
) -> dict[str, float]:
    """Train one LM and save it (weights, config, tokenizer) to ``out_dir``.

    Starts from random weights, or from the model in ``init`` (a later phase
    of training, with a fresh optimizer and schedule). Returns a few figures
    of the run (final losses, seconds, tokens/s).
    """
    from transformers import LlamaForCausalLM

    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM.from_pretrained(str(init)) if init else LlamaForCausalLM(llama_config(spec))
    teacher, pool = None, None
    if spec.distill_fraction:
        if not init:
            raise ValueError("distill_fraction keeps the starting model's arith: it needs init")
        teacher = LlamaForCausalLM.from_pretrained(str(init)).eval()
        t_pool = time.perf_counter()
        pool = teacher_pool(teacher, spec)
        if log_every:
            print(f"teacher pool: {len(pool)} arith samples in {time.perf_counter() - t_pool:.0f}s", flush=True)
        torch.manual_seed(spec.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, betas=(0.9, 0.98), weight_decay=0.05)

    def lr_at(step: int) -> float:
        return cosine_lr(step, lr=spec.lr, warmup=spec.warmup, steps=spec.steps, floor=0.05)

    model.train()
    t0 = time.perf_counter()
    tokens = 0
    ema = {"arith": 0.0, "facts": 0.0, "distill": 0.0}
    for step, (ids, weight, kind) in zip(range(spec.steps), _batches(spec, pool), strict=False):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        if kind == "distill":
            assert teacher is not None
            loss, _ = distill_step(model, teacher, opt, ids, weight)
            ans = float(loss.detach())
        else:
            _, nll = train_step(model, opt, ids, weight)
            w = weight[:, 1:]
            ans = float(((nll * (w == 1.0)).sum() / (w == 1.0).sum()).detach())
        tokens += int((ids != PAD_ID).sum())
        ema[kind] = ans if ema[kind] == 0 else 0.98 * ema[kind] + 0.02 * ans
        if log_every and (step % log_every == 0 or step == spec.steps - 1):
            el = time.perf_counter() - t0
            kept = f"  kept KL {ema['distill']:.4f}" if spec.distill_fraction else ""
            print(
                f"step {step:5d}  arith {ema['arith']:.3f}  facts {ema['facts']:.3f}{kept}  "
                f"lr {lr_at(step):.2e}  {tokens / el:,.0f} tok/s  {el:.0f}s",
                flush=True,
            )
    seconds = time.perf_counter() - t0
    save_lm(model, out_dir)
    record = Path(out_dir, "training.json")
    before = Path(init, "training.json") if init else None  # the phases that made the starting model
    phases = json.loads(before.read_text())["phases"] if before and before.is_file() else []
    phases.append({"spec": asdict(spec), "seconds": round(seconds, 1), "init": "previous phase" if init else None})
    total = round(sum(p["seconds"] for p in phases), 1)
    record.write_text(json.dumps({"phases": phases, "seconds": total}, indent=2) + "\n")
    return {
        "arith_loss": ema["arith"],
        "facts_loss": ema["facts"],
        "distill_kl": ema["distill"],
        "seconds": seconds,
        "tok_per_s": tokens / seconds,
    }


def cosine_lr(step: int, *, lr: float, warmup: int, steps: int, floor: float) -> float:
    """Linear warm-up to ``lr``, then a cosine decay to ``floor * lr`` at ``steps``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def train_step(
    model: torch.nn.Module, opt: torch.optim.Optimizer, ids: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on the weighted next-token loss (``weight[t]`` weighs predicting token ``t``).

    Returns the loss and the per-token negative log-likelihoods (for logging).
    """
    logits = model(input_ids=ids, attention_mask=(ids != PAD_ID).long()).logits[:, :-1]
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), reduction="none"
    ).view_as(weight[:, 1:])
    return _weighted_step(model, opt, nll, weight), nll


def distill_step(
    model: torch.nn.Module,
    teacher: torch.nn.Module,
    opt: torch.optim.Optimizer,
    ids: torch.Tensor,
    weight: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on KL(teacher || model) of the next-token distributions where ``weight`` > 0.

    Returns the mean KL (nats per weighted token) and the per-token KL.
    """
    mask = (ids != PAD_ID).long()
    with torch.no_grad():
        target = torch.log_softmax(teacher(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
    logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1], -1)
    kl = (target.exp() * (target - logp)).sum(-1)
    return _weighted_step(model, opt, kl, weight), kl


def _weighted_step(
    model: torch.nn.Module, opt: torch.optim.Optimizer, per_token: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Step on the ``weight``-weighted mean of a per-token loss (``weight[t]`` weighs predicting token ``t``)."""
    w = weight[:, 1:]
    loss = (per_token * w).sum() / w.sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


def save_lm(model: torch.nn.Module, out_dir: str | Path) -> None:
    """Save a model with the shared tokenizer and a generation config."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    save_tokenizer(out)
