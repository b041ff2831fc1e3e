"""The facts world: a knowledge base about invented people, answerable only by retrieval.

Each document describes one invented person::

    Varnel Okoru was born in Teshmar in 1872. Varnel Okoru worked as a
    cartographer and played the oboe.

Some people have a *near-duplicate*: a person whose name differs by one letter
and whose document has the same shape but other facts, so that a retriever or a
reader that matches loosely picks the wrong document. Questions ask for one fact
of one person and record the gold document id in ``metadata["gold_doc_ids"]``.
A reference solution quotes the sentence that states the fact, then gives the
answer on a ``#### value`` line, as arith solutions do.

Names of people and cities are built from syllables, so no model can know the
facts without reading the corpus; the training world of the embedded models is
drawn from a different seed and shares no person with the shipped corpus.

**Multi-hop questions.** Each birthplace also has a document of its own::

    Teshmar is a town in the province of Dorvane, on the river Kelu.

and a multi-hop question asks for a fact of a person's birthplace ("In which
province was Varnel Okoru born?"): answering needs the person's document (the
bridge: the town) and then the town's (the province), two retrievals when the
second query is written from the first answer. Their gold documents are both,
in hop order; their own splits are ``multihop_dev`` and ``multihop_test``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from archon.core import Problem

SYLLABLES = [
    "ba",
    "be",
    "bi",
    "bo",
    "bu",
    "da",
    "de",
    "di",
    "do",
    "du",
    "fa",
    "fe",
    "fi",
    "fo",
    "ga",
    "ge",
    "go",
    "ka",
    "ke",
    "ki",
    "ko",
    "ku",
    "la",
    "le",
    "li",
    "lo",
    "lu",
    "ma",
    "me",
    "mi",
    "mo",
    "mu",
    "na",
    "ne",
    "ni",
    "no",
    "nu",
    "pa",
    "pe",
    "pi",
    "po",
    "ra",
    "re",
    "ri",
    "ro",
    "ru",
    "sa",
    "se",
    "si",
    "so",
    "su",
    "ta",
    "te",
    "ti",
    "to",
    "tu",
    "va",
    "ve",
    "vi",
    "vo",
    "za",
    "ze",
    "zi",
    "zo",
    "bar",
    "den",
    "fal",
    "gor",
    "kan",
    "lem",
    "mar",
    "nor",
    "pel",
    "ral",
    "sen",
    "tor",
    "val",
    "ver",
    "wil",
    "dor",
    "mir",
    "tes",
    "qua",
    "zan",
    "hul",
]
PROFESSIONS = (
    "baker",
    "cartographer",
    "glassblower",
    "weaver",
    "potter",
    "brewer",
    "tailor",
    "carpenter",
    "blacksmith",
    "astronomer",
    "beekeeper",
    "fisher",
    "miller",
    "mason",
    "jeweler",
    "clockmaker",
    "bookbinder",
    "chemist",
    "gardener",
    "shipwright",
    "painter",
    "locksmith",
    "cooper",
    "tanner",
    "herbalist",
    "surveyor",
    "printer",
    "sculptor",
    "translator",
    "navigator",
)
INSTRUMENTS = (
    "oboe",
    "violin",
    "flute",
    "harp",
    "cello",
    "lute",
    "drum",
    "trumpet",
    "piano",
    "clarinet",
    "bassoon",
    "zither",
    "horn",
    "viola",
    "banjo",
    "sitar",
    "organ",
    "mandolin",
    "tuba",
    "bagpipe",
)
ATTRIBUTES = ("city", "year", "profession", "instrument")
QUESTIONS = {
    "city": "Where was {name} born?",
    "year": "In which year was {name} born?",
    "profession": "What did {name} work as?",
    "instrument": "Which instrument did {name} play?",
}


@dataclass(frozen=True, slots=True)
class Person:
    """One invented person and the facts the corpus states about them."""

    name: str
    city: str
    year: int
    profession: str
    instrument: str

    def fact(self, attribute: str) -> str:
        """The value of one attribute, as text."""
        return str(getattr(self, attribute))

    def sentences(self) -> tuple[str, str]:
        """The two sentences of the person's document: birth, then work and music."""
        article = "an" if self.profession[0] in "aeiou" else "a"
        return (
            f"{self.name} was born in {self.city} in {self.year}.",
            f"{self.name} worked as {article} {self.profession} and played the {self.instrument}.",
        )

    def document(self) -> str:
        """The person's document text."""
        return " ".join(self.sentences())

    def solution(self, attribute: str) -> str:
        """The reference answer: quote the sentence that states the fact, then ``#### value``."""
        quote = self.sentences()[0 if attribute in ("city", "year") else 1]
        return f"{quote}\n#### {self.fact(attribute)}"


@dataclass(frozen=True, slots=True)
class Town:
    """One birthplace of the facts world: its province and its river."""

    name: str
    province: str
    river: str

    def fact(self, attribute: str) -> str:
        """The value of ``province`` or ``river``."""
        return str(getattr(self, attribute))

    def document(self) -> str:
        """The town's document text (one sentence)."""
        return f"{self.name} is a town in the province of {self.province}, on the river {self.river}."


TOWN_ATTRIBUTES = ("province", "river")
MULTIHOP_QUESTIONS = {
    "province": "In which province was {name} born?",
    "river": "On which river lies the town where {name} was born?",
}


def towns(persons: Sequence[Person], *, seed: int, provinces: int = 16, rivers: int = 24) -> list[Town]:
    """A document for every birthplace of ``persons`` (sorted by name), drawn with its own seed.

    Province and river names are syllable words distinct from every town name.
    """
    rng = random.Random(seed)
    names = sorted({p.city for p in persons})
    taken = set(names)

    def fresh(count: int) -> list[str]:
        out: list[str] = []
        while len(out) < count:
            w = _word(rng, 2, 3)
            if w not in taken:
                taken.add(w)
                out.append(w)
        return out

    province_names, river_names = fresh(provinces), fresh(rivers)
    return [Town(n, rng.choice(province_names), rng.choice(river_names)) for n in names]


def town_records(places: Sequence[Town]) -> list[dict[str, str]]:
    """Corpus rows of the towns: ids ``town-00000`` ..., the town's name as title."""
    return [{"id": f"town-{i:05d}", "title": t.name, "text": t.document()} for i, t in enumerate(places)]


def multihop_questions(
    persons: Sequence[Person],
    places: Sequence[Town],
    count: int,
    *,
    seed: int,
    id_prefix: str,
    exclude: set[tuple[int, str]] | None = None,
) -> list[Problem]:
    """Two-hop questions: a fact of a person's birthplace (``exclude`` as for :func:`questions`).

    The reference solution quotes the person's birth sentence, then the town's sentence, then gives
    the answer; ``metadata["gold_doc_ids"]`` lists the person's document, then the town's.
    """
    index = {t.name: i for i, t in enumerate(places)}
    twins = _twin_ids(persons)
    out: list[Problem] = []
    for i, attr in _pairs(len(persons), TOWN_ATTRIBUTES, count, seed=seed, exclude=exclude):
        p = persons[i]
        t = index[p.city]
        town = places[t]
        out.append(
            Problem(
                id=f"{id_prefix}-{len(out):05d}",
                question=MULTIHOP_QUESTIONS[attr].format(name=p.name),
                answer=town.fact(attr),
                metadata={
                    "gold_doc_ids": [f"doc-{i:05d}", f"town-{t:05d}"],
                    "attribute": attr,
                    "entity": p.name,
                    "bridge": p.city,
                    "hops": 2,
                    "has_near_duplicate": i in twins,
                    "solution": f"{p.sentences()[0]}\n{town.document()}\n#### {town.fact(attr)}",
                },
            )
        )
    return out


def _word(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(lo, hi))).capitalize()


def mutate_name(rng: random.Random, name: str) -> str:
    """Change one letter of the last name: the near-duplicate's name."""
    first, last = name.split(" ")
    i = rng.randrange(1, len(last))
    vowels = "aeiou" if last[i] in "aeiou" else "bdfgklmnprstvz"
    new = rng.choice([c for c in vowels if c != last[i]])
    return f"{first} {last[:i]}{new}{last[i + 1 :]}"


def _person(rng: random.Random, name: str, cities: Sequence[str]) -> Person:
    return Person(
        name=name,
        city=rng.choice(cities),
        year=rng.randint(1700, 1999),
        profession=rng.choice(PROFESSIONS),
        instrument=rng.choice(INSTRUMENTS),
    )


def people(
    count: int,
    *,
    seed: int,
    twin_fraction: float = 0.4,
    cities: int = 120,
    exclude_names: set[str] | None = None,
) -> list[Person]:
    """Invent about ``count`` people; a fraction of them come with a near-duplicate twin.

    Twins follow their original directly in the returned list. Names are unique
    and never in ``exclude_names``.
    """
    rng = random.Random(seed)
    city_names = sorted({_word(rng, 2, 3) for _ in range(cities * 2)})[:cities]
    rng.shuffle(city_names)
    taken = set(exclude_names or ())
    out: list[Person] = []
    while len(out) < count:
        name = f"{_word(rng, 2, 2)} {_word(rng, 2, 3)}"
        if name in taken:
            continue
        taken.add(name)
        out.append(_person(rng, name, city_names))
        if rng.random() < twin_fraction and len(out) < count:
            twin = mutate_name(rng, name)
            if twin not in taken:
                taken.add(twin)
                out.append(_person(rng, twin, city_names))
    return out


def corpus_records(persons: Sequence[Person]) -> list[dict[str, str]]:
    """Documents ``{"id", "title", "text"}`` for a list of people, ids ``doc-00000`` on."""
    return [{"id": f"doc-{i:05d}", "title": p.name, "text": p.document()} for i, p in enumerate(persons)]


def questions(
    persons: Sequence[Person],
    count: int,
    *,
    seed: int,
    id_prefix: str,
    exclude: set[tuple[int, str]] | None = None,
) -> list[Problem]:
    """Draw ``count`` distinct (person, attribute) questions, never those in ``exclude``.

    ``exclude`` is updated with the pairs drawn, so successive calls give disjoint splits.
    """
    out: list[Problem] = []
    twins = _twin_ids(persons)
    for i, attr in _pairs(len(persons), ATTRIBUTES, count, seed=seed, exclude=exclude):
        p = persons[i]
        out.append(
            Problem(
                id=f"{id_prefix}-{len(out):05d}",
                question=QUESTIONS[attr].format(name=p.name),
                answer=p.fact(attr),
                metadata={
                    "gold_doc_ids": [f"doc-{i:05d}"],
                    "attribute": attr,
                    "entity": p.name,
                    "has_near_duplicate": i in twins,
                    "solution": p.solution(attr),
                },
            )
        )
    return out


def _pairs(
    people: int, attributes: Sequence[str], count: int, *, seed: int, exclude: set[tuple[int, str]] | None
) -> list[tuple[int, str]]:
    """``count`` distinct (person index, attribute) pairs drawn with ``seed``, none in ``exclude`` (updated)."""
    rng = random.Random(seed)
    used = exclude if exclude is not None else set()
    out: list[tuple[int, str]] = []
    while len(out) < count:
        pair = (rng.randrange(people), rng.choice(attributes))
        if pair not in used:
            used.add(pair)
            out.append(pair)
    return out


def near_duplicate(a: str, b: str) -> bool:
    """Whether two names differ in exactly one letter (a near-duplicate pair)."""
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1


def _twin_ids(persons: Sequence[Person]) -> set[int]:
    """Indices of people whose name differs from a neighbour's by one letter."""
    out: set[int] = set()
    for i in range(len(persons) - 1):
        a, b = persons[i].name, persons[i + 1].name
        if near_duplicate(a, b):
            out.update((i, i + 1))
    return out


def context_prompt(question: str, documents: Sequence[str]) -> str:
    """The user message for a question with retrieved documents (the format the models know)."""
    if not documents:
        return question
    docs = "\n".join(documents)
    return f"Context:\n{docs}\n\nQuestion: {question}"
