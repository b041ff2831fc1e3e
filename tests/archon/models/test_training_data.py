"""The training examples of the embedded models: what each kind puts in front of the model."""

from __future__ import annotations

import random

from archon.data import facts
from archon.models.training.data import _shipped, facts_example, lookup_example, train_people


def test_five_passage_facts_examples_hold_the_gold_document_the_twin_and_distinct_others():
    rng = random.Random(0)
    people = train_people()
    by_name = {p.name: p for p in people}
    counts = set()
    for _ in range(200):
        user, answer = facts_example(rng, 4, min_distractors=4)
        context, question = user.split("\n\nQuestion: ")
        gold = next(p for name, p in by_name.items() if f" {name} " in f" {question} ".replace("?", " "))
        docs = context.removeprefix("Context:\n").split("\n")
        counts.add(len(docs))
        assert gold.document() in docs and len(set(docs)) == len(docs)
        twins = [p for p in people if p is not gold and facts.near_duplicate(p.name, gold.name)]
        assert all(t.document() in docs for t in twins)  # the twin is always there when there is one
        assert any(answer == gold.solution(a) for a in facts.ATTRIBUTES)
    assert counts == {5}
    assert not {p.name for p in people} & _shipped()  # the training world shares no name with the corpus


def test_lookup_exercises_quote_the_line_of_the_asked_name_among_near_duplicates():
    rng = random.Random(1)
    twins = 0
    for _ in range(300):
        user, completion = lookup_example(rng)
        head, *lines = user.split("\n")
        target = head.removeprefix("Look up ").removesuffix(".")
        table = dict(line.split(": ", 1) for line in lines)
        assert 2 <= len(lines) <= 6 and target in table
        assert completion == f"{target}: {table[target]}\n#### {table[target]}"
        twins += any(n != target and facts.near_duplicate(n, target) for n in table)
    assert 100 < twins < 200  # a near-duplicate of the asked name about half the time


def test_multihop_examples_are_iterdrag_transcripts_whose_inserted_passages_are_not_the_models_to_write():
    from archon.models.training.data import (
        EOS_ID,
        encode_chars,
        multihop_example,
        multihop_examples,
        train_towns,
    )
    from archon.retrieval.iterdrag import INSTRUCTIONS, IterDragParams

    rng = random.Random(1)
    people = {p.name: p for p in train_people()}
    towns = train_towns()
    shipped_towns = {d.title for d in __import__("archon").data.corpus("facts") if d.id.startswith("town-")}
    p = IterDragParams(engine="e", retriever="r")
    for _ in range(50):
        user, pieces = multihop_example(rng)
        question, instructions = user.split("\n")
        assert instructions == INSTRUCTIONS
        m = next(n for n in people if n in question)
        town = towns[people[m].city]
        text = "".join(t for t, _ in pieces)
        lines = text.split("\n")
        assert lines[0] == f"{p.follow_up} Where was {m} born?"
        assert f"{p.intermediate} {town.name}" in lines and lines[-1].startswith(p.final)
        attr = "province" if "province" in question else "river"
        assert lines[-1] == f"{p.final} {town.fact(attr)}"
        for piece, weight in pieces:  # what the operator inserts is context, what the model writes is learnt
            inserted = piece.startswith("Context:\n")
            assert (weight is None) == inserted
            if inserted:
                assert piece.endswith(f"\n{p.intermediate}")
        assert people[m].document() in text and town.document() in text
    ids, start, weights = next(multihop_examples(3))
    assert ids[-1] == EOS_ID and len(weights) == len(ids) and set(weights[:start]) == {0.0}
    assert None in weights[start:] and 1.0 in weights[start:]
    assert encode_chars("Follow up:") == ids[start : start + len("Follow up:")]
    assert len(towns) >= 50 and set(towns) != shipped_towns
