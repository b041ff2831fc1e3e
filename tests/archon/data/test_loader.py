import json
from pathlib import Path

import pytest

from archon import data
from archon.core import DataError, Problem


def write(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / "probs.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_embedded_sets_load_as_problems():
    dev = data.load("arith", split="dev")
    assert len(dev) == 500 and all(isinstance(p, Problem) for p in dev)
    assert dev[0].answer is not None and "steps" in dev[0].metadata
    assert len(data.load("arith", split="test")) == 1000
    assert data.splits("facts") == {"dev": 500, "test": 1000, "multihop_dev": 300, "multihop_test": 500, "corpus": 2320}


def test_a_good_user_file_loads(tmp_path):
    p = write(
        tmp_path,
        [
            json.dumps({"id": "a", "question": "2 + 2?", "answer": 4}),
            "",
            json.dumps({"question": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]}),
            json.dumps({"id": 7, "question": "x", "tests": "assert f() == 1", "metadata": {"level": 3}}),
        ],
    )
    probs = data.load(str(p))
    assert [x.id for x in probs] == ["a", "line-3", "7"]
    assert probs[0].answer == "4"
    assert probs[1].messages()[0]["role"] == "system"
    assert probs[2].metadata == {"level": 3} and probs[2].answer is None


def test_a_byte_order_mark_at_the_start_and_crlf_line_ends_are_accepted(tmp_path):
    p = tmp_path / "windows.jsonl"
    rows = [{"id": "a", "question": "1 + 1?", "answer": "2"}, {"id": "b", "question": "é?", "answer": "x"}]
    p.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode() + b"\r\n")
    probs = data.load(str(p))
    assert [x.id for x in probs] == ["a", "b"] and probs[1].question == "é?"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "a", "question": "q"', r"probs.jsonl:2: invalid JSON"),
        ('["q"]', r"probs.jsonl:2: expected a JSON object"),
        ('{"id": "b"}', r"probs.jsonl:2: field 'question' is missing"),
        ('{"id": "b", "question": ""}', r"probs.jsonl:2: field 'question' must be"),
        (
            '{"id": "b", "question": "q", "anwser": "1"}',
            r"probs.jsonl:2: unknown field 'anwser' \(did you mean 'answer'\?\)",
        ),
        ('{"id": "b", "question": "q", "answer": [1]}', r"probs.jsonl:2: field 'answer' must be a string or a number"),
        ('{"id": "b", "question": "q", "metadata": 3}', r"probs.jsonl:2: field 'metadata' must be an object"),
        ('{"id": "b", "question": [{"role": "bot", "content": "x"}]}', r"probs.jsonl:2: field 'question\[0\].role'"),
        ('{"id": "a", "question": "again"}', r"probs.jsonl:2: field 'id': 'a' repeats line 1"),
    ],
)
def test_a_bad_line_is_named_with_file_line_and_field(tmp_path, line, message):
    p = write(tmp_path, [json.dumps({"id": "a", "question": "fine"}), line])
    with pytest.raises(DataError, match=message):
        data.load(p)


def test_unknown_names_and_splits_are_explained(tmp_path):
    with pytest.raises(DataError, match="did you mean 'arith'"):
        data.load("arth")
    with pytest.raises(DataError, match="has no split 'train'"):
        data.load("arith", split="train")
    with pytest.raises(DataError, match="no problems"):
        data.load(write(tmp_path, [""]))
    with pytest.raises(DataError, match="no corpus or file named 'arith'"):
        data.corpus("arith")
