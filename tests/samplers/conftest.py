"""Fixtures of the sampler tests: a scripted OpenAI-compatible server and a real ``transformers serve``."""

from collections.abc import Iterator

import pytest

from samplers.transformers_engine import TransformersEngine
from tests.samplers.servers import FakeOpenAIServer, TransformersServe


@pytest.fixture(scope="module")
def engine() -> Iterator[TransformersEngine]:
    """The embedded tiny-l behind a TransformersEngine, shared by a test module."""
    e = TransformersEngine("tiny-l")
    yield e
    e.close()


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tserve() -> Iterator[TransformersServe]:
    """``transformers serve`` on the embedded tiny-l, started once for the session."""
    from archon.models import path

    server = TransformersServe(path("tiny-l")).start()
    yield server
    server.stop()
