import itertools
import re

from archon import data
from archon.data import facts
from archon.models.training.data import train_people


def test_people_are_deterministic_and_unique():
    a = facts.people(300, seed=3)
    assert a == facts.people(300, seed=3)
    assert a != facts.people(300, seed=4)
    assert len({p.name for p in a}) == len(a)


def test_corpus_is_large_and_has_near_duplicates():
    docs = data.corpus("facts")
    assert len(docs) >= 2000
    assert len({d.id for d in docs}) == len(docs)
    titles = [d.title for d in docs]
    near = sum(
        len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1 for a, b in itertools.pairwise(titles)
    )
    assert near >= 300


def test_questions_are_answered_by_their_gold_document_only():
    docs = {d.id: d for d in data.corpus("facts")}
    by_entity: dict[str, list[str]] = {}
    for d in docs.values():
        by_entity.setdefault(d.title, []).append(d.id)
    for split in ("dev", "test"):
        probs = data.load("facts", split=split)
        assert len(probs) >= (500 if split == "dev" else 1000)
        for p in probs:
            gold = p.metadata["gold_doc_ids"]
            assert len(gold) == 1
            doc = docs[gold[0]]
            assert doc.title == p.metadata["entity"] and p.metadata["entity"] in p.question
            assert re.search(rf"\b{re.escape(p.answer)}\b", doc.text)
            quote, answer_line = p.metadata["solution"].split("\n")
            assert quote in doc.text and answer_line == f"#### {p.answer}"
            assert by_entity[doc.title] == gold  # no other document about this person
    dev = {(p.metadata["entity"], p.metadata["attribute"]) for p in data.load("facts", split="dev")}
    test = {(p.metadata["entity"], p.metadata["attribute"]) for p in data.load("facts", split="test")}
    assert not dev & test
    assert any(p.metadata["has_near_duplicate"] for p in data.load("facts", split="dev"))


def test_training_world_shares_no_person_with_the_corpus():
    shipped = {d.title for d in data.corpus("facts")}
    trained = {p.name for p in train_people()}
    assert len(trained) >= 5000
    assert not shipped & trained


def test_context_prompt_lists_documents_before_the_question():
    text = facts.context_prompt("Where was A B born?", ["doc one", "doc two"])
    assert text == "Context:\ndoc one\ndoc two\n\nQuestion: Where was A B born?"
    assert facts.context_prompt("Q?", []) == "Q?"


def test_multihop_questions_need_the_person_then_the_birthplace():
    docs = {d.id: d for d in data.corpus("facts")}
    towns = {d.title: d for d in docs.values() if d.id.startswith("town-")}
    persons = [p for p in docs.values() if p.id.startswith("doc-")]
    assert len(towns) == len({re.match(r".* born in (\w+) in", p.text).group(1) for p in persons})  # one per birthplace
    seen = set()
    for split in ("multihop_dev", "multihop_test"):
        probs = data.load("facts", split=split)
        assert len(probs) >= 300
        for p in probs:
            person, town = (docs[g] for g in p.metadata["gold_doc_ids"])
            assert person.title == p.metadata["entity"] in p.question and p.metadata["hops"] == 2
            bridge = p.metadata["bridge"]
            assert f"born in {bridge} in" in person.text and town.title == bridge and towns[bridge] is town
            assert bridge not in p.question and p.answer not in person.text  # one document does not answer it
            assert re.search(rf"\b{re.escape(p.answer)}\b", town.text)
            first, second, answer_line = p.metadata["solution"].split("\n")
            assert first in person.text and second == town.text and answer_line == f"#### {p.answer}"
            key = (p.metadata["entity"], p.metadata["attribute"])
            assert key not in seen  # the splits are disjoint
            seen.add(key)
