"""Train the embedded reward models on ``tiny-l``'s own arith samples.

Both start from ``tiny-l``'s weights (a reward model fine-tuned from the policy,
as is usual) with a fresh one-logit head:

- ``tiny-prm`` is a ``LlamaForTokenClassification``: the solution is written
  with a newline after every step, the final ``#### answer`` line included, and
  the logit at each newline scores the solution up to that step. Labels come
  from the exact step checker: a step is good while no step up to it is wrong.
- ``tiny-orm`` is a ``LlamaForSequenceClassification``: the logit at the last
  token (``</s>``) scores the whole solution; the label is whether the final
  answer is right.

The reading format is declared in ``reward_config.json`` next to the weights,
so a scorer never has to guess it from the model's name.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from archon.data import arith
from archon.models.training.data import EOS_ID, PAD_ID, VOCAB, encode_chars, encode_prompt
from archon.models.training.sampling import final_answer, sample
from archon.models.training.tokenizer import save_tokenizer

NEWLINE_ID = VOCAB["\n"]
PRM_FORMAT = {
    "kind": "process",
    "prompt": "chat_template",
    "step_delimiter": "\n",
    "read_at": "every step delimiter; a delimiter is appended after the last step",
    "score": "sigmoid(logit)",
    "higher_is_better": True,
}
ORM_FORMAT = {
    "kind": "outcome",
    "prompt": "chat_template",
    "read_at": "last token; the solution is followed by the eos token",
    "score": "sigmoid(logit)",
    "higher_is_better": True,
}


@dataclass(frozen=True)
class Labeled:
    """One sampled solution with its labels."""

    question: str
    solution: str
    steps_ok: list[bool]
    correct: bool


@dataclass(frozen=True)
class RewardSpec:
    """How the reward models' data are drawn and how long they train."""

    problems: int = 3000
    samples: int = 4
    temperature: float = 1.0
    steps: int = 600
    batch: int = 64
    lr: float = 5e-4
    seed: int = 0


def label(question: str, solution: str, answer: str) -> Labeled:
    """Label one solution with the exact step checker."""
    return Labeled(
        question=question,
        solution=solution,
        steps_ok=arith.step_labels(question, solution),
        correct=final_answer(solution) == answer,
    )


def draw_samples(policy: torch.nn.Module, spec: RewardSpec) -> list[Labeled]:
    """Sample and label ``tiny-l``'s solutions on training-world arith problems."""
    from archon.models.training.data import arith_example

    rng = random.Random(spec.seed + 11)
    qs = [arith_example(rng)[0] for _ in range(spec.problems)]
    outs = sample(policy, qs, n=spec.samples, temperature=spec.temperature, max_new_tokens=160, seed=spec.seed)
    data = []
    for q, sols in zip(qs, outs, strict=True):
        ans = str(arith.parse_question(q).answer)
        data.extend(label(q, s, ans) for s in sols)
    return data


def encode_solution(question: str, solution: str, *, process: bool) -> tuple[list[int], list[int]]:
    """Token ids and the positions to read: every step's newline (process) or the last token."""
    prompt = encode_prompt(question)
    body = solution.strip()
    if process:
        ids = prompt + encode_chars(body + "\n")
        reads = [i for i in range(len(prompt), len(ids)) if ids[i] == NEWLINE_ID]
    else:
        ids = prompt + encode_chars(body) + [EOS_ID]
        reads = [len(ids) - 1]
    return ids, reads


def _batch(items: list[Labeled], *, process: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, and (row, position) targets flattened with their labels."""
    enc = [encode_solution(x.question, x.solution, process=process) for x in items]
    width = max(len(ids) for ids, _ in enc)
    ids = torch.full((len(items), width), PAD_ID, dtype=torch.long)
    pos, lab = [], []
    for row, ((seq, reads), x) in enumerate(zip(enc, items, strict=True)):
        ids[row, : len(seq)] = torch.tensor(seq)
        labels = x.steps_ok if process else [x.correct]
        for p, ok in zip(reads, labels, strict=False):
            pos.append((row, p))
            lab.append(float(ok))
    return ids, torch.tensor(pos, dtype=torch.long), torch.tensor(lab)


def _logits(model: torch.nn.Module, ids: torch.Tensor, pos: torch.Tensor, *, process: bool) -> torch.Tensor:
    mask = (ids != PAD_ID).long()
    out = model(input_ids=ids, attention_mask=mask).logits
    if process:
        return out[pos[:, 0], pos[:, 1], 0]
    return out[:, 0]


def reward_model(policy_dir: str | Path, *, process: bool) -> torch.nn.Module:
    """A reward model initialised from the policy's backbone, with a new one-logit head."""
    from transformers import (
        AutoConfig,
        LlamaForCausalLM,
        LlamaForSequenceClassification,
        LlamaForTokenClassification,
    )

    config = AutoConfig.from_pretrained(str(policy_dir))
    config.num_labels = 1
    config.architectures = None
    cls = LlamaForTokenClassification if process else LlamaForSequenceClassification
    model = cls(config)
    policy = LlamaForCausalLM.from_pretrained(str(policy_dir))
    model.model.load_state_dict(policy.model.state_dict())
    return model


def train_reward(
    policy_dir: str | Path,
    data: list[Labeled],
    out_dir: str | Path,
    spec: RewardSpec,
    *,
    process: bool,
    log_every: int = 50,
) -> dict[str, float]:
    """Fine-tune one reward model on labelled samples and save it to ``out_dir``."""
    torch.manual_seed(spec.seed)
    rng = random.Random(spec.seed + (1 if process else 2))
    model = reward_model(policy_dir, process=process)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    model.train()
    t0 = time.perf_counter()
    ema = 0.0
    order: list[int] = []
    for step in range(spec.steps):
        lr = spec.lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / spec.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        if len(order) < spec.batch:
            order = list(range(len(data)))
            rng.shuffle(order)
        items = [data[order.pop()] for _ in range(spec.batch)]
        ids, pos, lab = _batch(items, process=process)
        logits = _logits(model, ids, pos, process=process)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, lab)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = float(loss.detach()) if step == 0 else 0.98 * ema + 0.02 * float(loss.detach())
        if log_every and (step % log_every == 0 or step == spec.steps - 1):
            print(
                f"{'prm' if process else 'orm'} step {step:4d}  bce {ema:.3f}  {time.perf_counter() - t0:.0f}s",
                flush=True,
            )
    seconds = time.perf_counter() - t0
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    save_tokenizer(out)
    fmt = PRM_FORMAT if process else ORM_FORMAT
    (out / "reward_config.json").write_text(json.dumps(fmt, indent=2) + "\n")
    (out / "training.json").write_text(
        json.dumps({"spec": asdict(spec), "examples": len(data), "seconds": round(seconds, 1)}, indent=2)
    )
    return {"bce": ema, "seconds": seconds}


@torch.no_grad()
def score(model: torch.nn.Module, items: list[Labeled], *, process: bool, batch: int = 128) -> list[list[float]]:
    """Sigmoid scores: per step (process) or one per solution (outcome)."""
    model.eval()
    out: list[list[float]] = []
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        ids, pos, _ = _batch(chunk, process=process)
        probs = torch.sigmoid(_logits(model, ids, pos, process=process)).tolist()
        rows: list[list[float]] = [[] for _ in chunk]
        for (r, _), p in zip(pos.tolist(), probs, strict=True):
            rows[r].append(p)
        out.extend(rows)
    return out
