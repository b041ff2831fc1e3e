"""The options a spec may give each engine and verifier kind are exactly its class's keyword arguments."""

from __future__ import annotations

import inspect

import pytest

from samplers.engines import OPENAI_OPTIONS, TRANSFORMERS_OPTIONS, VLLM_OPTIONS, EngineConfig
from verifiers.kinds import JUDGE_OPTIONS, REWARD_OPTIONS


def keywords(cls: type, *, set_elsewhere: set[str]) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self"} - set_elsewhere


def test_engine_options_are_the_engine_classes_other_keywords() -> None:
    from samplers.openai_engine import OpenAIEngine
    from samplers.transformers_engine import TransformersEngine
    from samplers.vllm_engine import VLLMEngine

    fields = set(EngineConfig.model_fields)
    assert set(TRANSFORMERS_OPTIONS) == keywords(TransformersEngine, set_elsewhere=fields)
    assert set(OPENAI_OPTIONS) == keywords(OpenAIEngine, set_elsewhere=fields | {"api_key"})
    assert set(VLLM_OPTIONS) == keywords(VLLMEngine, set_elsewhere=fields | {"llm"})  # an object, not spec data


def test_verifier_options_are_the_verifier_classes_keywords() -> None:
    from verifiers.judge import GenerativeVerifier, YesNoJudge
    from verifiers.reward import RewardModel

    assert set(REWARD_OPTIONS) == keywords(RewardModel, set_elsewhere={"model", "name"})
    assert set(JUDGE_OPTIONS["yes_no_judge"]) == keywords(YesNoJudge, set_elsewhere={"engine", "name"})
    assert set(JUDGE_OPTIONS["generative_judge"]) == keywords(GenerativeVerifier, set_elsewhere={"engine", "name"})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"model": "tiny-l", "options": {"seed": 3}}, None),
        ({"model": "tiny-l", "options": {"sed": 3}}, "options.sed: unknown option; did you mean 'seed'?"),
        ({"model": "tiny-l", "device": "cuda:1"}, None),
        ({"model": "tiny-l", "device": "gpu0"}, "unknown device 'gpu0'"),
    ],
)
def test_engine_configs_check_their_options_and_device(config: dict, message: str | None) -> None:
    if message is None:
        EngineConfig(**config)
    else:
        with pytest.raises(ValueError, match=message):
            EngineConfig(**config)
