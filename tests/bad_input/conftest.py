"""Shared guards of the bad-input tests: bad input is refused before any heavy work."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def refuse_model_loads(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Call it with what should be refused first: from then on, loading any model's weights fails the test."""

    def guard(before: str) -> None:
        import transformers

        def refuse(cls: type, *args: object, **kwargs: object) -> None:
            pytest.fail(f"loaded a model ({cls.__name__}) before refusing {before}")

        monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(refuse))

    return guard
