"""Train the embedded step-checking verifier LMs (``tiny-prm``, ``tiny-prm-weak`` and ``tiny-orm``).

Checking one step in isolation is far easier to learn than writing a whole chain (the
generator-verifier gap of the arith world, ``shared/METHODS.md``). The verifier is a small causal LM
of ``tiny-l``'s shape trained from scratch, on the training world only, on two kinds of sequences:

- **isolated steps** ``<s>a op b = c</s>`` drawn from the world's own step distribution (the steps of
  random training chains), with the loss on the result ``c</s>``: it learns to compute one step;
- **chains**, a training question with its solution in the chat format of the policy, with the loss on
  the solution; in some chains one result is replaced by a wrong number (its loss masked) and the
  chain goes on from the wrong value, so that the model learns to *copy* each step's operands from the
  question and the previous line as written, not to recompute them.

It is read by teacher forcing (``verifiers.stepcheck``): a step's score is the probability of its
operands in context (a wrong copy is improbable) times the probability of its result given only
``a op b = `` (a wrong result is improbable); see ``CHECKER_FORMAT``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from archon.data import arith
from archon.models.training.data import BOS_ID, EOS_ID, PAD_ID, arith_example, encode_chars, encode_prompt
from archon.models.training.lm import LMSpec, cosine_lr, llama_config, save_lm, train_step

CHECKER_FORMAT = {
    "kind": "process",
    "read": "teacher_forced",
    "prompt": "chat_template",
    "step_delimiter": "\n",
    "isolated_pattern": r"^(?P<lhs>\d+ [-+*] \d+ = )(?P<rhs>\S+)$",
    "score": "probability",
    "higher_is_better": True,
    "read_at": (
        "each step's tokens teacher-forced after the question and the earlier steps (the tokens of a step "
        "that matches isolated_pattern up to its lhs; the others and their delimiter whole); a matching "
        "step's rhs and </s> teacher-forced after <s>lhs alone; a step's score is the product of those "
        "probabilities"
    ),
}


@dataclass(frozen=True)
class CheckerSpec:
    """Shape and schedule of the step-checking verifier LM."""

    hidden: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 384
    steps: int = 4200
    lr: float = 2e-3
    warmup: int = 100
    step_batch: int = 256
    chain_batch: int = 32
    chain_fraction: float = 0.25
    corrupt_fraction: float = 0.4
    seed: int = 11
    steps_kept: tuple[int, ...] = (300, 500, 700, 1000, 1500, 1800, 2100, 2400, 2700)
    """Early checkpoints saved under ``checkpoints/step-N`` (for studying how the verifier learns)."""

    def lm(self) -> LMSpec:
        """The LM spec of this shape (for the Hugging Face config)."""
        return LMSpec(
            hidden=self.hidden,
            layers=self.layers,
            heads=self.heads,
            kv_heads=self.kv_heads,
            intermediate=self.intermediate,
            steps=self.steps,
            seed=self.seed,
            context_length=512,
        )


def step_sequence(line: str) -> tuple[list[int], int]:
    """``<s>a op b = c</s>`` ids and where the result starts (the loss starts there)."""
    lhs, rhs = line.split(" = ")
    head = [BOS_ID, *encode_chars(lhs + " = ")]
    return [*head, *encode_chars(rhs), EOS_ID], len(head)


def _step_examples(rng: random.Random) -> Iterator[tuple[list[int], list[float]]]:
    while True:
        _, solution = arith_example(rng)
        for line in solution.split("\n")[:-1]:
            ids, start = step_sequence(line)
            yield ids, [0.0] * start + [1.0] * (len(ids) - start)


def _corrupt(rng: random.Random, value: int) -> int:
    """A plausible wrong result (an off-by-a-little or a digit slip), never the value itself."""
    while True:
        if rng.random() < 0.5:
            wrong = value + rng.choice([-10, -2, -1, 1, 2, 10, rng.randint(-30, 30)])
        else:
            digits = list(str(value))
            digits[rng.randrange(len(digits))] = str(rng.randint(0, 9))
            wrong = int("".join(digits))
        if wrong != value and 0 <= wrong <= 2 * arith.MAX_VALUE:
            return wrong


def _chain_examples(rng: random.Random, corrupt_fraction: float) -> Iterator[tuple[list[int], list[float]]]:
    while True:
        question, _ = arith_example(rng)
        chain = arith.parse_question(question)
        bad = rng.randrange(len(chain.ops)) if rng.random() < corrupt_fraction else -1
        value, lines, masked = chain.start, [], []
        for i, (op, x) in enumerate(zip(chain.ops, chain.operands, strict=True)):
            result = arith.apply(value, op, x)
            if i == bad:
                result = _corrupt(rng, result)
            lhs = f"{value} {op} {x} = "
            masked.append((sum(len(s) + 1 for s in lines) + len(lhs), len(str(result))) if i == bad else None)
            lines.append(f"{lhs}{result}")
            value = result
        lines.append(f"{arith.ANSWER_MARK}{value}")
        prompt = encode_prompt(question)
        ids = [*prompt, *encode_chars("\n".join(lines)), EOS_ID]
        weight = [0.0] * len(prompt) + [1.0] * (len(ids) - len(prompt))
        for span in masked:
            if span is not None:
                at, width = span
                for k in range(width):
                    weight[len(prompt) + at + k] = 0.0
        yield ids, weight


def _batch(items: list[tuple[list[int], list[float]]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in items)
    ids = torch.full((len(items), width), PAD_ID, dtype=torch.long)
    weight = torch.zeros((len(items), width))
    for r, (seq, w) in enumerate(items):
        ids[r, : len(seq)] = torch.tensor(seq)
        weight[r, : len(w)] = torch.tensor(w)
    return ids, weight


def heldout_steps(count: int = 2000, seed: int = 90_001) -> list[str]:
    """Steps of fresh training-world chains for measuring step accuracy (disjoint seed)."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < count:
        _, solution = arith_example(rng)
        out.extend(solution.split("\n")[:-1])
    return out[:count]


@torch.no_grad()
def step_accuracy(model: torch.nn.Module, lines: list[str]) -> float:
    """Share of steps whose every result token (and ``</s>``) is the model's argmax under teacher forcing."""
    model.eval()
    seqs = [step_sequence(line) for line in lines]
    ok = 0
    for lo in range(0, len(seqs), 512):
        part = seqs[lo : lo + 512]
        ids, weight = _batch([(s, [0.0] * a + [1.0] * (len(s) - a)) for s, a in part])
        logits = model(input_ids=ids, attention_mask=(ids != PAD_ID).long()).logits[:, :-1]
        hit = (logits.argmax(-1) == ids[:, 1:]) | (weight[:, 1:] == 0)
        ok += int(hit.all(dim=1).sum())
    model.train()
    return ok / len(seqs)


def train_checker(
    spec: CheckerSpec,
    out_dir: str | Path,
    *,
    checkpoints: str | Path | None = None,
    kind: str = "process",
    init: str | Path | None = None,
    log_every: int = 200,
    stop_after: int | None = None,
) -> dict[str, float]:
    """Train the checker LM and save it to ``out_dir`` (early checkpoints under ``checkpoints``).

    It starts from random weights, or from the checker in ``init`` (a later phase, with a fresh
    optimizer and schedule). ``stop_after`` ends the run after that many steps (the schedule is
    still the whole ``spec.steps``): what is needed to make one early checkpoint alone.

    ``kind`` is how its ``reward_config.json`` says to read it: ``process`` (a score per step) or
    ``outcome`` (one score per solution: the product of its steps' scores).
    """
    from transformers import LlamaForCausalLM

    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM.from_pretrained(str(init)) if init else LlamaForCausalLM(llama_config(spec.lm()))
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, betas=(0.9, 0.98), weight_decay=0.05)
    rng = random.Random(spec.seed)
    steps_src = _step_examples(random.Random(spec.seed + 1))
    chains_src = _chain_examples(random.Random(spec.seed + 2), spec.corrupt_fraction)
    held = heldout_steps()

    def lr_at(step: int) -> float:
        return cosine_lr(step, lr=spec.lr, warmup=spec.warmup, steps=spec.steps, floor=0.02)

    model.train()
    t0 = time.perf_counter()
    history: list[dict[str, float]] = []
    ema = {False: 0.0, True: 0.0}
    for step in range(spec.steps if stop_after is None else min(stop_after, spec.steps)):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        is_chain = rng.random() < spec.chain_fraction
        src, size = (chains_src, spec.chain_batch) if is_chain else (steps_src, spec.step_batch)
        ids, weight = _batch([next(src) for _ in range(size)])
        loss, _ = train_step(model, opt, ids, weight)
        value = loss.item()
        ema[is_chain] = value if ema[is_chain] == 0 else 0.97 * ema[is_chain] + 0.03 * value
        last = step == spec.steps - 1
        if checkpoints is not None and step + 1 in spec.steps_kept:
            where = Path(checkpoints) / f"step-{step + 1}"
            figures = {"step": step + 1, "step_accuracy": step_accuracy(model, held)}
            save_lm(model, where)
            _write_record(where, spec, figures, time.perf_counter() - t0, kind=kind, init=init)
        if log_every and (step % log_every == 0 or last):
            acc = step_accuracy(model, held[:500])
            el = time.perf_counter() - t0
            history.append({"step": step, "seconds": round(el, 1), "step_accuracy": acc})
            print(
                f"step {step:5d}  steps {ema[False]:.3f}  chains {ema[True]:.3f}  held-out step acc {acc:.3f}  "
                f"lr {lr_at(step):.2e}  {el:.0f}s",
                flush=True,
            )
    seconds = time.perf_counter() - t0
    final = {"step": step + 1, "step_accuracy": step_accuracy(model, held)}
    save_lm(model, out_dir)
    _write_record(out_dir, spec, final, seconds, kind=kind, init=init, history=history)
    return {"seconds": seconds, **final}


def write_reading(out_dir: str | Path, kind: str) -> None:
    """Write how a checker is read (``reward_config.json``): as a ``process`` or an ``outcome`` verifier."""
    reading = {**CHECKER_FORMAT, "kind": kind}
    if kind == "outcome":
        reading["read_at"] += "; as an outcome verifier, a solution's score is the product of its steps' scores"
    Path(out_dir, "reward_config.json").write_text(json.dumps(reading, indent=2) + "\n")


def _write_record(
    out_dir: str | Path,
    spec: CheckerSpec,
    figures: dict[str, float],
    seconds: float,
    *,
    kind: str,
    init: str | Path | None,
    history: list | None = None,
) -> None:
    """Write the reading (``reward_config.json``) and the record of every phase so far (``training.json``)."""
    out = Path(out_dir)
    write_reading(out, kind)
    before = Path(init, "training.json") if init else None
    phases = json.loads(before.read_text())["phases"] if before and before.is_file() else []
    phase = {"spec": asdict(spec), "seconds": round(seconds, 1), "init": "previous phase" if init else None, **figures}
    if history is not None:
        phase["history"] = history
    phases.append(phase)
    record = {"phases": phases, "seconds": round(sum(p["seconds"] for p in phases), 1), **figures}
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
