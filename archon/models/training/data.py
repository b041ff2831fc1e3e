"""Training examples for the embedded models, drawn from worlds disjoint from the shipped splits.

Arith problems come from their own seed and never repeat a question of the
shipped ``dev``/``test`` splits. Facts examples come from a separately seeded
world of invented people that shares no name with the shipped corpus; each
example puts the gold document among 0-3 distractors (by default) (the near-duplicate twin
included when there is one) and asks for one fact.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from pathlib import Path

from archon.data import arith, facts
from archon.models.training.tokenizer import BOS, CHARS, EOS, ROLES, SPECIALS

TRAIN_FACTS_SEED = 1007
TRAIN_FACTS_PEOPLE = 6000
OPEN_FACTS_PEOPLE = 20000
EMBEDDED = Path(__file__).resolve().parents[2] / "data" / "embedded"

VOCAB = {tok: i for i, tok in enumerate(SPECIALS)} | {c: len(SPECIALS) + i for i, c in enumerate(CHARS)}
BOS_ID, EOS_ID, PAD_ID = VOCAB[BOS], VOCAB[EOS], VOCAB["<pad>"]
USER_ID, ASSISTANT_ID = VOCAB[ROLES[1]], VOCAB[ROLES[2]]


def encode_chars(text: str) -> list[int]:
    """Token ids of plain text (one per character), as the shipped tokenizer gives them."""
    return [VOCAB[c] for c in text]


def encode_prompt(user: str) -> list[int]:
    r"""Ids of ``<s><|user|>{user}\\n<|assistant|>``: the chat template with a generation prompt."""
    return [BOS_ID, USER_ID, *encode_chars(user + "\n"), ASSISTANT_ID]


@cache
def held_out_questions() -> frozenset[str]:
    """Every arith question of the shipped splits (never trained on)."""
    out: set[str] = set()
    for split in ("dev", "test"):
        with (EMBEDDED / "arith" / f"{split}.jsonl").open() as f:
            out.update(json.loads(line)["question"] for line in f)
    return frozenset(out)


@cache
def _shipped() -> frozenset[str]:
    with (EMBEDDED / "facts" / "corpus.jsonl").open() as f:
        return frozenset(json.loads(line)["title"] for line in f)


@cache
def train_people() -> tuple[facts.Person, ...]:
    """The people of the training facts world (no name shared with the shipped corpus)."""
    return tuple(facts.people(TRAIN_FACTS_PEOPLE, seed=TRAIN_FACTS_SEED, exclude_names=set(_shipped())))


def arith_example(rng: random.Random) -> tuple[str, str]:
    """One (question, solution) pair of the training arith world."""
    held = held_out_questions()
    while True:
        chain = arith.random_chain(rng, rng.randint(*arith.STEPS), rng.randint(*arith.DIGITS))
        if chain.question not in held:
            return chain.question, chain.solution


@cache
def open_people() -> tuple[facts.Person, ...]:
    """A larger training world for reading: nearly every city is new, half the jobs and instruments invented.

    Seen rarely and with open-ended values, its facts cannot be remembered or
    guessed from a short list: only copying them from the document pays.
    """
    rng = random.Random(TRAIN_FACTS_SEED + 1)
    seed = TRAIN_FACTS_SEED + 1
    base = facts.people(OPEN_FACTS_PEOPLE, seed=seed, cities=OPEN_FACTS_PEOPLE, exclude_names=set(_shipped()))

    def word() -> str:
        return "".join(rng.choice(facts.SYLLABLES) for _ in range(rng.randint(2, 3)))

    return tuple(
        replace(
            p,
            profession=word() if rng.random() < 0.5 else p.profession,
            instrument=word() if rng.random() < 0.5 else p.instrument,
        )
        for p in base
    )


def facts_example(
    rng: random.Random, max_distractors: int = 3, *, world: str = "train", min_distractors: int | None = None
) -> tuple[str, str]:
    """One (context + question, answer) pair of a training facts world (``train`` or ``open``).

    With ``min_distractors`` the context holds the gold document and a number of
    other documents drawn uniformly from ``[min_distractors, max_distractors]``,
    the near-duplicate twin always among them when there is one (as retrieval
    would hand it). Without it, the earlier phases' draw is kept, so that they
    reproduce: the twin with probability 0.7, and a stopping rule that favours
    few documents.
    """
    persons = train_people() if world == "train" else open_people()
    i = rng.randrange(len(persons))
    gold = persons[i]
    docs = [gold.document()]
    twin_p = 0.7 if min_distractors is None else 1.0
    for j in (i - 1, i + 1):  # the near-duplicate twin sits next to its original
        if 0 <= j < len(persons) and facts.near_duplicate(gold.name, persons[j].name) and rng.random() < twin_p:
            docs.append(persons[j].document())
    if min_distractors is None:
        while len(docs) < 1 + rng.randint(0, max_distractors):
            docs.append(persons[rng.randrange(len(persons))].document())
    else:
        count = 1 + rng.randint(min_distractors, max_distractors)
        while len(docs) < count:
            d = persons[rng.randrange(len(persons))].document()
            if d not in docs:
                docs.append(d)
    rng.shuffle(docs)
    attr = rng.choice(facts.ATTRIBUTES)
    question = facts.QUESTIONS[attr].format(name=gold.name)
    return facts.context_prompt(question, docs), gold.solution(attr)


@cache
def train_towns() -> dict[str, facts.Town]:
    """A document for every birthplace of the training world (by town name)."""
    return {t.name: t for t in facts.towns(train_people(), seed=TRAIN_FACTS_SEED + 7)}


CONTEXT = None
"""A piece of a multi-hop transcript that the operator inserts, not the model: weighted like a facts context."""


def multihop_example(rng: random.Random, max_distractors: int = 2) -> tuple[str, list[tuple[str, float | None]]]:
    """A two-hop question answered in ``iterdrag``'s format, as (user turn, transcript pieces).

    The model writes each follow-up, intermediate answer and the final answer (weight 1); the retrieved
    passages and the ``Intermediate answer:`` prefix are what the operator inserts (weight ``None``: the
    spec's context weight). Each hop's context holds its gold document among 0-``max_distractors`` others.
    """
    from archon.retrieval.iterdrag import INSTRUCTIONS

    persons, towns = train_people(), train_towns()
    i = rng.randrange(len(persons))
    person = persons[i]
    town = towns[person.city]
    attr = rng.choice(facts.TOWN_ATTRIBUTES)
    value = town.fact(attr)
    question = facts.MULTIHOP_QUESTIONS[attr].format(name=person.name)
    people_docs = [person.document()]
    for j in (i - 1, i + 1):
        if 0 <= j < len(persons) and facts.near_duplicate(person.name, persons[j].name) and rng.random() < 0.5:
            people_docs.append(persons[j].document())
    while len(people_docs) < 1 + rng.randint(0, max_distractors):
        people_docs.append(persons[rng.randrange(len(persons))].document())
    others = [t for t in towns.values() if t.name != town.name]
    town_docs = [town.document(), *(t.document() for t in rng.sample(others, rng.randint(0, max_distractors)))]
    rng.shuffle(people_docs)
    rng.shuffle(town_docs)
    pieces: list[tuple[str, float | None]] = [
        (f"Follow up: Where was {person.name} born?\n", 1.0),
        ("Context:\n" + "\n".join(people_docs) + "\nIntermediate answer:", CONTEXT),
        (f" {person.city}\n", 1.0),
        (f"Follow up: What is known about the town {person.city}?\n", 1.0),
        ("Context:\n" + "\n".join(town_docs) + "\nIntermediate answer:", CONTEXT),
        (f" {value}\n", 1.0),
        (f"So the final answer is: {value}", 1.0),
    ]
    return f"{question}\n{INSTRUCTIONS}", pieces


def copy_example(rng: random.Random) -> tuple[str, str]:
    """A ``Repeat: ...`` exercise: copying invented words teaches the model to look things up.

    Content-based copying (induction) is what reading a fact from a document
    needs; on its own the facts task teaches it slowly, plain copying quickly.
    """
    words = []
    for _ in range(rng.randint(2, 6)):
        if rng.random() < 0.25:
            words.append(str(rng.randint(1, 2000)))
        else:
            words.append("".join(rng.choice(facts.SYLLABLES) for _ in range(rng.randint(1, 4))).capitalize())
    text = " ".join(words)
    return f"Repeat: {text}", text


def lookup_example(rng: random.Random) -> tuple[str, str]:
    """A ``Look up:`` exercise: find the line of one name among 2-6 lines of similar names, quote it.

    Associative recall on multi-character keys, with near-duplicate names (one letter changed) half the
    time: the skill of picking the gold document among several passages, in short sequences.
    """

    def name() -> str:
        return f"{_syllables(rng, 1, 2).capitalize()} {_syllables(rng, 2, 3).capitalize()}"

    target = name()
    names = [target]
    if rng.random() < 0.5:
        names.append(facts.mutate_name(rng, target))
    while len(names) < rng.randint(2, 6):
        other = name()
        if other not in names:
            names.append(other)
    rng.shuffle(names)
    values = {n: str(rng.randint(1, 1999)) if rng.random() < 0.3 else _syllables(rng, 1, 3) for n in names}
    lines = "\n".join(f"{n}: {values[n]}" for n in names)
    return f"Look up {target}.\n{lines}", f"{target}: {values[target]}\n#### {values[target]}"


def _syllables(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choice(facts.SYLLABLES) for _ in range(rng.randint(lo, hi)))


KINDS = {
    "arith": lambda rng, _: arith_example(rng),
    "facts": lambda rng, k: facts_example(rng, k[0], min_distractors=k[1]),
    "open_facts": lambda rng, k: facts_example(rng, k[0], min_distractors=k[1], world="open"),
    "copy": lambda rng, _: copy_example(rng),
    "lookup": lambda rng, _: lookup_example(rng),
}


def examples(
    seed: int, kind: str, max_distractors: int = 3, min_distractors: int | None = None
) -> Iterator[tuple[list[int], int]]:
    """Endless ``(token ids, completion start)`` pairs of one kind: prompt ids then ``solution</s>``.

    Facts examples put the gold document among other documents (``facts_example``).
    """
    rng = random.Random(seed)
    kind_maker = KINDS[kind]

    def make(rng: random.Random) -> tuple[str, str]:
        return kind_maker(rng, (max_distractors, min_distractors))

    while True:
        user, completion = make(rng)
        prompt = encode_prompt(user)
        yield prompt + encode_chars(completion) + [EOS_ID], len(prompt)


def multihop_examples(seed: int, max_distractors: int = 2) -> Iterator[tuple[list[int], int, list[float | None]]]:
    """Endless ``(token ids, completion start, weights)`` of :func:`multihop_example`.

    ``weights[t]`` applies to predicting token ``t`` of the completion part (``None``: the context weight).
    """
    rng = random.Random(seed)
    while True:
        user, pieces = multihop_example(rng, max_distractors)
        prompt = encode_prompt(user)
        ids, weights = list(prompt), [0.0] * len(prompt)
        for text, w in pieces:
            chars = encode_chars(text)
            ids += chars
            weights += [w] * len(chars)  # type: ignore[list-item]
        yield [*ids, EOS_ID], len(prompt), [*weights, 1.0]
