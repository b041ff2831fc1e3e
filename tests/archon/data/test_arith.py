import json
from pathlib import Path

import pytest

from archon.data import arith, build


def test_generator_is_deterministic_under_a_seed():
    a = [p.to_dict() for p in arith.generate(50, seed=123)]
    b = [p.to_dict() for p in arith.generate(50, seed=123)]
    c = [p.to_dict() for p in arith.generate(50, seed=124)]
    assert a == b
    assert a != c


def test_reference_solutions_are_right_and_stepwise():
    for p in arith.generate(300, seed=5):
        chain = arith.parse_question(p.question)
        lines = p.metadata["solution"].split("\n")
        assert len(lines) == p.metadata["steps"] + 1
        assert lines[-1] == f"#### {p.answer}"
        value = chain.start
        for line, op, x in zip(lines, chain.ops, chain.operands, strict=False):
            left, right = line.split(" = ")
            a, o, b = left.split()
            assert (int(a), o, int(b)) == (value, op, x)
            value = eval(f"{value} {op} {x}")  # the generator must agree with Python's arithmetic
            assert int(right) == value
            assert 0 <= value <= arith.MAX_VALUE
        assert str(value) == p.answer
        assert arith.first_wrong_step(p.question, p.metadata["solution"]) is None


def test_difficulty_varies_and_is_recorded():
    probs = list(arith.generate(400, seed=9))
    steps = {p.metadata["steps"] for p in probs}
    digits = {p.metadata["digits"] for p in probs}
    assert steps == set(range(1, 8))
    assert digits == {1, 2}
    levels = [p.metadata["difficulty"] for p in probs]
    assert min(levels) == 1 and max(levels) == 14
    for p in probs:
        nums = [int(t) for t in p.question.split(":")[1].split() if t.isdigit()]
        assert max(len(str(n)) for n in nums) <= p.metadata["digits"]


@pytest.mark.parametrize(
    ("solution", "first_wrong"),
    [
        ("47 + 38 = 85\n85 * 3 = 255\n255 - 59 = 196\n#### 196", None),
        ("47 + 38 = 85\n85 * 3 = 245\n245 - 59 = 186\n#### 186", 1),
        ("47 + 38 = 86\n86 * 3 = 258\n258 - 59 = 199\n#### 199", 0),
        ("47 + 38 = 85\n85 * 3 = 255\n255 - 59 = 196\n#### 195", 3),
        ("47 + 38 = 85\n85 * 3 = 255\n#### 255", 2),
        ("47 + 38 = 85\n85 * 3 = 255\n255 - 59 = 196\n#### 196\n#### 196", 4),
        ("47  +  38 = 85\n85 * 3 = 255\n255 - 59 = 196\n#### 196", None),
    ],
)
def test_step_checker_finds_the_first_wrong_step(solution, first_wrong):
    q = "Evaluate left to right: 47 + 38 * 3 - 59"
    assert arith.first_wrong_step(q, solution) == first_wrong
    labels = arith.step_labels(q, solution)
    assert labels == [first_wrong is None or i < first_wrong for i in range(len(solution.split("\n")))]


def test_parse_question_rejects_other_text():
    with pytest.raises(ValueError, match="not an arith question"):
        arith.parse_question("What is 2 + 2?")


def test_shipped_splits_are_reproducible_and_disjoint(tmp_path: Path):
    counts = build.build(tmp_path)
    assert counts["arith/dev"] >= 500 and counts["arith/test"] >= 1000
    shipped = Path(build.__file__).parent / "embedded"
    for rel in ("arith/dev.jsonl", "arith/test.jsonl", "facts/corpus.jsonl", "facts/dev.jsonl", "facts/test.jsonl"):
        assert (tmp_path / rel).read_text() == (shipped / rel).read_text(), rel
    dev = {json.loads(x)["question"] for x in (shipped / "arith/dev.jsonl").open()}
    test = {json.loads(x)["question"] for x in (shipped / "arith/test.jsonl").open()}
    assert not dev & test
