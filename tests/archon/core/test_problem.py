import dataclasses

import pytest

from archon.core import Problem


def test_plain_question_becomes_one_user_message():
    p = Problem(id="1", question="hi")
    assert p.messages() == [{"role": "user", "content": "hi"}]
    assert p.to_dict() == {"id": "1", "question": "hi"}


def test_chat_question_is_copied_not_shared():
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    p = Problem(id="2", question=msgs, answer="4", metadata={"k": 1})
    out = p.messages()
    out[0]["content"] = "changed"
    assert p.messages()[0]["content"] == "s"
    assert p.to_dict()["answer"] == "4" and p.to_dict()["metadata"] == {"k": 1}


def test_problems_are_immutable():
    p = Problem(id="3", question="q")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.answer = "x"  # type: ignore[misc]
