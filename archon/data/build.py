"""Regenerate the embedded data sets: ``python -m archon.data.build [OUT_DIR]``.

The output is deterministic: the seeds below fix every problem and document.
The models' training data is drawn from other seeds, excluding every question
and person written here (see :mod:`archon.models.training.data`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from archon.data import arith, facts

ARITH_SEEDS = {"dev": 1, "test": 2}
ARITH_SIZES = {"dev": 500, "test": 1000}
FACTS_SEED = 7
FACTS_PEOPLE = 2200
FACTS_SIZES = {"dev": 500, "test": 1000}
MULTIHOP_SIZES = {"multihop_dev": 300, "multihop_test": 500}
TOWNS_SEED = 11


def facts_people() -> list[facts.Person]:
    """The people of the shipped facts world."""
    return facts.people(FACTS_PEOPLE, seed=FACTS_SEED)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSON lines; return how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def build(out: Path) -> dict[str, int]:
    """Write every embedded data set under ``out``; return the row counts."""
    counts: dict[str, int] = {}
    seen: set[str] = set()
    for split in ("dev", "test"):
        probs = list(
            arith.generate(ARITH_SIZES[split], seed=ARITH_SEEDS[split], exclude=seen, id_prefix=f"arith-{split}")
        )
        seen.update(p.question for p in probs)  # type: ignore[misc]
        counts[f"arith/{split}"] = write_jsonl(out / "arith" / f"{split}.jsonl", (p.to_dict() for p in probs))
    persons = facts_people()
    places = facts.towns(persons, seed=TOWNS_SEED)
    records = facts.corpus_records(persons) + facts.town_records(places)  # the towns after the people
    counts["facts/corpus"] = write_jsonl(out / "facts" / "corpus.jsonl", records)
    used: set[tuple[int, str]] = set()
    for i, split in enumerate(("dev", "test")):
        qs = facts.questions(
            persons, FACTS_SIZES[split], seed=FACTS_SEED + 1 + i, id_prefix=f"facts-{split}", exclude=used
        )
        counts[f"facts/{split}"] = write_jsonl(out / "facts" / f"{split}.jsonl", (q.to_dict() for q in qs))
    hops: set[tuple[int, str]] = set()
    for i, split in enumerate(MULTIHOP_SIZES):
        qs = facts.multihop_questions(
            persons, places, MULTIHOP_SIZES[split], seed=TOWNS_SEED + 1 + i, id_prefix=f"facts-{split}", exclude=hops
        )
        counts[f"facts/{split}"] = write_jsonl(out / "facts" / f"{split}.jsonl", (q.to_dict() for q in qs))
    return counts


def main() -> None:
    """Command-line entry point."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "embedded"
    for name, n in build(out).items():
        print(f"{name}: {n}")


if __name__ == "__main__":
    main()
