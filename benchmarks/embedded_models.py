"""Measure the embedded models against their targets and write the figures of their model cards.

    python benchmarks/embedded_models.py                 # full: all of arith dev, 32 samples
    python benchmarks/embedded_models.py --limit 40      # a quick look at inference-time scaling

Figures (arith ``dev`` unless said otherwise):

- ``tiny-l`` / ``tiny-s``: greedy accuracy; pass@1, coverage@k (unbiased pass@k)
  and majority vote over ``--samples`` samples at the recommended temperature;
  the share of problems whose own pass@1 is >= 0.8 and <= 0.2.
- ``tiny-prm``: step-level ROC AUC against the exact step checker, and
  ``tiny-orm``: solution-level ROC AUC against the reference answer, both on
  held-out ``tiny-l`` samples of the dev problems.
- facts ``dev``: greedy accuracy with the gold document in the prompt and with none.

It prints a table and writes ``benchmarks/results/embedded_models.json``;
``--write-cards`` also refreshes the figures in each model's ``README.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before benchmarks/, whose verifiers.py would shadow the verifiers package

from archon import data, models  # noqa: E402
from archon.core.metrics import majority, pass_at_k, roc_auc  # noqa: E402
from archon.data.facts import context_prompt  # noqa: E402
from archon.models.training.reward import Labeled, label, score  # noqa: E402
from archon.models.training.sampling import final_answer, sample  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RECOMMENDED_TEMPERATURE = 1.0
TARGETS = {
    "tiny-l pass@1": "0.25 - 0.70",
    "tiny-l coverage@k (k = samples)": ">= 0.90",
    "tiny-l majority@k - pass@1": ">= 0.10",
    "share of problems with pass@1 >= 0.8": ">= 0.20",
    "share of problems with pass@1 <= 0.2": ">= 0.20",
    "tiny-l pass@1 - tiny-s pass@1": ">= 0.15",
    "tiny-prm step AUC": ">= 0.85",
    "tiny-orm solution AUC": ">= 0.80",
    "facts greedy, gold doc (tiny-l)": ">= 0.80",
    "facts greedy, no doc (tiny-l)": "<= 0.10",
}


def load_lm(name: str) -> torch.nn.Module:
    """An embedded causal LM, in eval mode."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(models.path(name)).eval()


def arith_figures(name: str, problems: list, n: int, temperature: float) -> tuple[dict, list[list[str]]]:
    """Greedy and sampled figures of one LM on arith problems; also returns the samples."""
    model = load_lm(name)
    qs = [p.question for p in problems]
    t0 = time.perf_counter()
    greedy = sample(model, qs, n=1, temperature=0.0, max_new_tokens=160)
    samples = sample(model, qs, n=n, temperature=temperature, max_new_tokens=160, seed=1)
    seconds = time.perf_counter() - t0
    per_problem, votes, cover = [], [], []
    for p, outs in zip(problems, samples, strict=True):
        answers = [final_answer(s) for s in outs]
        c = sum(a == p.answer for a in answers)
        per_problem.append(c / n)
        cover.append(pass_at_k(n, c, n))
        votes.append(majority(answers) == p.answer)
    count = len(problems)
    figures = {
        "greedy": sum(
            g[0] is not None and final_answer(g[0]) == p.answer for g, p in zip(greedy, problems, strict=True)
        )
        / count,
        "pass@1": sum(per_problem) / count,
        f"coverage@{n}": sum(cover) / count,
        f"majority@{n}": sum(votes) / count,
        "share pass@1 >= 0.8": sum(x >= 0.8 for x in per_problem) / count,
        "share pass@1 <= 0.2": sum(x <= 0.2 for x in per_problem) / count,
        "seconds": round(seconds, 1),
    }
    for k in (4, 16):
        if k <= n:
            figures[f"coverage@{k}"] = sum(pass_at_k(n, round(x * n), k) for x in per_problem) / count
    return figures, samples


def reward_figures(problems: list, samples: list[list[str]], per_problem: int) -> dict:
    """ROC AUC of the reward models on the first ``per_problem`` samples of each problem."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    items: list[Labeled] = [
        label(p.question, s, p.answer) for p, outs in zip(problems, samples, strict=True) for s in outs[:per_problem]
    ]
    prm = AutoModelForTokenClassification.from_pretrained(models.path("tiny-prm"))
    orm = AutoModelForSequenceClassification.from_pretrained(models.path("tiny-orm"))
    step_scores = score(prm, items, process=True)
    flat_s, flat_l = [], []
    for x, s in zip(items, step_scores, strict=True):
        flat_s.extend(s)
        flat_l.extend(x.steps_ok[: len(s)])
    sol_scores = [s[0] for s in score(orm, items, process=False)]
    # the PRM as an outcome scorer too (minimum over steps), a common use
    prm_min = [min(s) for s in step_scores]
    correct = [x.correct for x in items]
    return {
        "solutions": len(items),
        "steps": len(flat_l),
        "step positives": sum(flat_l) / len(flat_l),
        "tiny-prm step AUC": roc_auc(flat_s, flat_l),
        "tiny-orm solution AUC": roc_auc(sol_scores, correct),
        "tiny-prm (min) solution AUC": roc_auc(prm_min, correct),
    }


def facts_figures(name: str, limit: int | None) -> dict:
    """Greedy facts accuracy with the gold document and with no document."""
    model = load_lm(name)
    problems = data.load("facts", split="dev")[:limit]
    docs = {d.id: d.text for d in data.corpus("facts")}
    with_gold = [context_prompt(p.question, [docs[i] for i in p.metadata["gold_doc_ids"]]) for p in problems]
    out: dict = {}
    for key, users in (("gold doc", with_gold), ("no doc", [p.question for p in problems])):
        gen = sample(model, users, n=1, temperature=0.0, max_new_tokens=128)
        right = [final_answer(g[0]) == p.answer for g, p in zip(gen, problems, strict=True)]
        out[key] = sum(right) / len(problems)
        if key == "gold doc":
            by: dict[str, list[bool]] = {}
            for ok, p in zip(right, problems, strict=True):
                by.setdefault(p.metadata["attribute"], []).append(ok)
            out["gold doc by attribute"] = {k: round(sum(v) / len(v), 3) for k, v in sorted(by.items())}
    return out


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="only the first N problems of each dev split")
    ap.add_argument("--samples", type=int, default=32, help="samples per problem (>= 32 for the targets)")
    ap.add_argument("--temperature", type=float, default=RECOMMENDED_TEMPERATURE)
    ap.add_argument("--reward-samples", type=int, default=4, help="samples per problem scored by the RMs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write-cards", action="store_true", help="refresh the figures in the model cards")
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default: under benchmarks/results/)")
    args = ap.parse_args()
    if args.out is None:
        suffix = "" if args.limit is None and args.samples == 32 else f"_limit{args.limit}_n{args.samples}"
        args.out = RESULTS / f"embedded_models{suffix}.json"
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    problems = data.load("arith", split="dev")[: args.limit]
    n, T = args.samples, args.temperature
    large, samples = arith_figures("tiny-l", problems, n, T)
    small, _ = arith_figures("tiny-s", problems, n, T)
    rewards = reward_figures(problems, samples, args.reward_samples)
    facts_l = facts_figures("tiny-l", args.limit)
    facts_s = facts_figures("tiny-s", args.limit)
    by_difficulty = _by_difficulty(problems, samples)
    result = {
        "machine": f"{_cpu_name()} ({platform.machine()}), {torch.get_num_threads()} threads",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "problems": len(problems),
        "samples": n,
        "temperature": T,
        "tiny-l": large,
        "tiny-s": small,
        "rewards": rewards,
        "facts": {"tiny-l": facts_l, "tiny-s": facts_s},
        "tiny-l pass@1 by steps": by_difficulty,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    result["targets"] = _targets(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    _print(result)
    if args.write_cards:
        write_cards(result)


CARD_TEXT = {
    "tiny-l": "The larger causal LM of the embedded default, trained from scratch on the arith and facts "
    "training worlds (disjoint from the shipped splits). The default policy model: clearly imperfect at "
    "arithmetic, with varied errors, so that sampling, voting and verifier-guided search visibly help; "
    "able to read a fact from a document in its prompt.",
    "tiny-s": "A several times smaller causal LM trained on the same data: the cheap model for model "
    "switching, cascades and FLOP-matched comparisons.",
    "tiny-prm": "A process reward model fine-tuned from tiny-l on tiny-l's own arith samples, labelled by "
    "the exact step checker (a step is good while no step up to it is wrong). Write the solution with a "
    "newline after every step, the last included; the sigmoid of the logit at each newline is the score of "
    "the solution up to that step. Imperfect on purpose, as real PRMs are.",
    "tiny-orm": "An outcome reward model fine-tuned from tiny-l on tiny-l's own arith samples, labelled by "
    "whether the final answer is right. The sigmoid of the logit at the final </s> scores the solution.",
}


SHORTFALL_REASONS = {
    "facts greedy, gold doc (tiny-l)": "tiny-l copies birth years, birth places and instruments from the "
    "document (accuracy by attribute above) but often writes a wrong profession. Reading grew with each "
    "facts-heavy training phase (greedy accuracy 0.03 without the copying curriculum; then 0.31, 0.51, 0.55 "
    "and 0.76 after successive phases) and the issue's training budget (60 minutes for all models on 2 CPU "
    "cores; this run took 55) ran out before 0.80. A longer last phase or a larger tiny-l is the likely fix.",
}


def _shortfalls(targets: dict) -> str:
    missed = [k for k, v in targets.items() if not v["met"]]
    if not missed:
        return ""
    lines = ["", "## Targets not met", ""]
    for k in missed:
        lines.append(
            f"- {k}: {targets[k]['measured']:.3f} (target {targets[k]['target']}). "
            f"{SHORTFALL_REASONS.get(k, '')}".rstrip()
        )
    return "\n".join(lines) + "\n"


def write_cards(r: dict) -> None:
    """Write each embedded model's README.md: what it is, how it was trained, its measured figures."""
    t = r["targets"]
    figures = "\n".join(
        f"| {k} | {v['measured']:.3f} | {v['target']} | {'yes' if v['met'] else 'no'} |" for k, v in t.items()
    )
    for name in models.names():
        info = models.info(name)
        d = models.path(name)
        cfg = json.loads((d / "config.json").read_text())
        training = json.loads((d / "training.json").read_text()) if (d / "training.json").is_file() else {}
        body = f"""# {name}

{CARD_TEXT[name]}

- Architecture: `{info.architecture}` (hidden {cfg["hidden_size"]}, {cfg["num_hidden_layers"]} layers,
  {cfg["num_attention_heads"]} heads, {cfg["num_key_value_heads"]} KV heads, intermediate
  {cfg["intermediate_size"]}, context {cfg["max_position_embeddings"]}), {info.params:,} parameters, float32.
- Tokenizer: the project's character-level tokenizer with a chat template
  (`<s><|user|>question\\n<|assistant|>answer</s>`).
- Training: `python -m archon.models.training` (fixed seeds); this model took
  {training.get("seconds", "?")} s on 2 CPU cores. Settings: `training.json`.
- Recommended sampling temperature for the LMs: {RECOMMENDED_TEMPERATURE} (top-p 1, top-k off).

## Measured figures

Reproduced by `python benchmarks/embedded_models.py --write-cards` on {r["machine"]}:
{r["problems"]} arith dev problems, {r["samples"]} samples per problem at temperature {r["temperature"]};
reward models scored on {r["rewards"]["solutions"]} held-out tiny-l samples ({r["rewards"]["steps"]} steps).

| figure | measured | target | met |
|---|---|---|---|
{figures}

tiny-l: greedy {r["tiny-l"]["greedy"]:.3f}, pass@1 by number of steps {r["tiny-l pass@1 by steps"]};
tiny-s: greedy {r["tiny-s"]["greedy"]:.3f}, pass@1 {r["tiny-s"]["pass@1"]:.3f};
facts greedy accuracy (tiny-s): gold doc {r["facts"]["tiny-s"]["gold doc"]:.3f},
no doc {r["facts"]["tiny-s"]["no doc"]:.3f}.

facts greedy accuracy of tiny-l with the gold document, by asked attribute:
{r["facts"]["tiny-l"]["gold doc by attribute"]}.
{_shortfalls(t)}
## Limitations

Trained for minutes on synthetic data: it knows nothing outside the arith and facts worlds.
"""
        (d / "README.md").write_text(body)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _by_difficulty(problems: list, samples: list[list[str]]) -> dict[str, float]:
    groups: dict[int, list[float]] = {}
    for p, outs in zip(problems, samples, strict=True):
        c = sum(final_answer(s) == p.answer for s in outs) / len(outs)
        groups.setdefault(p.metadata["steps"], []).append(c)
    return {str(k): round(sum(v) / len(v), 3) for k, v in sorted(groups.items())}


def _targets(r: dict) -> dict[str, dict]:
    n = r["samples"]
    got = {
        "tiny-l pass@1": r["tiny-l"]["pass@1"],
        "tiny-l coverage@k (k = samples)": r["tiny-l"][f"coverage@{n}"],
        "tiny-l majority@k - pass@1": r["tiny-l"][f"majority@{n}"] - r["tiny-l"]["pass@1"],
        "share of problems with pass@1 >= 0.8": r["tiny-l"]["share pass@1 >= 0.8"],
        "share of problems with pass@1 <= 0.2": r["tiny-l"]["share pass@1 <= 0.2"],
        "tiny-l pass@1 - tiny-s pass@1": r["tiny-l"]["pass@1"] - r["tiny-s"]["pass@1"],
        "tiny-prm step AUC": r["rewards"]["tiny-prm step AUC"],
        "tiny-orm solution AUC": r["rewards"]["tiny-orm solution AUC"],
        "facts greedy, gold doc (tiny-l)": r["facts"]["tiny-l"]["gold doc"],
        "facts greedy, no doc (tiny-l)": r["facts"]["tiny-l"]["no doc"],
    }
    out = {}
    for k, v in got.items():
        t = TARGETS[k]
        if " - " in t and not t.startswith((">", "<")):
            lo, hi = (float(x) for x in t.split(" - "))
            ok = lo <= v <= hi
        elif t.startswith(">="):
            ok = v >= float(t[2:])
        else:
            ok = v <= float(t[2:])
        out[k] = {"measured": round(v, 3), "target": t, "met": ok}
    return out


def _print(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Embedded models on arith/facts dev ({r['problems']} problems, {r['samples']} samples, "
        f"T={r['temperature']})"
    )
    for col in ("figure", "measured", "target", "met"):
        table.add_column(col)
    for k, v in r["targets"].items():
        table.add_row(k, f"{v['measured']:.3f}", v["target"], "yes" if v["met"] else "NO")
    Console().print(table)
    print(json.dumps({k: r[k] for k in ("tiny-l", "tiny-s", "rewards", "facts", "tiny-l pass@1 by steps")}, indent=1))


if __name__ == "__main__":
    main()
