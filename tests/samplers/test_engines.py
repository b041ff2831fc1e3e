"""Engines declared by name: validation, building, and one shared engine per configuration."""

import asyncio
import subprocess
import sys

import pytest
from pydantic import ValidationError

import samplers
from archon.core import GenRequest, RequestError, UnsupportedFeatureError
from samplers.engines import EngineConfig, EnginePool, build_engine


def test_the_pool_builds_each_configuration_once_and_shares_it():
    pool = EnginePool({"policy": {"model": "tiny-l"}, "judge": {"model": "tiny-l"}, "small": {"model": "tiny-s"}})
    try:
        assert pool.get("policy") is pool.get("judge")
        assert pool.get("small") is not pool.get("policy")
        assert len(pool.built()) == 2
        assert isinstance(pool.get("policy"), samplers.TransformersEngine)

        async def both():
            reqs = [GenRequest("1 + 1 =", max_tokens=4, temperature=0)] * 2
            return await asyncio.gather(pool.get("policy").generate(reqs[0]), pool.get("judge").generate(reqs[1]))

        before = pool.get("policy").batch_stats.batches
        a, b = asyncio.run(both())
        assert a.texts == b.texts
        assert pool.get("policy").batch_stats.batches == before + 1  # two users, one batch
    finally:
        pool.close()
    assert pool.built() == []


def test_unknown_names_and_conflicting_redeclarations_are_errors():
    pool = EnginePool({"policy": {"model": "tiny-l"}})
    with pytest.raises(RequestError, match=r"no engine named 'polcy' \(declared: policy\)"):
        pool.get("polcy")
    pool.declare("policy", {"model": "tiny-s"})  # allowed before first use
    assert pool.config("policy").model == "tiny-s"


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"model": "tiny-l", "kind": "openai"}, "needs base_url"),
        ({"model": "tiny-l", "base_url": "http://x/v1"}, "only for kind 'openai'"),
        ({"model": "tiny-l", "max_batch": 0}, "max_batch"),
        ({"model": "tiny-l", "kind": "tgi"}, "kind"),
        ({"model": "tiny-l", "devcie": "cpu"}, "devcie"),
    ],
)
def test_invalid_configs_name_the_field(fields, message):
    with pytest.raises(ValidationError, match=message):
        EngineConfig(**fields)


def test_openai_and_vllm_kinds_build_their_engines(monkeypatch):
    engine = build_engine(EngineConfig(kind="openai", model="tiny-l", base_url="http://127.0.0.1:9/v1"))
    assert isinstance(engine, samplers.OpenAIEngine)
    assert engine.facts.parameters == 800768  # read from the embedded model's config
    asyncio.run(engine.aclose())
    monkeypatch.setitem(sys.modules, "vllm", None)  # as where the extra is missing, installed or not here
    with pytest.raises(UnsupportedFeatureError, match=r"pip install .archon-its\[vllm\]"):
        build_engine(EngineConfig(kind="vllm", model="tiny-l"))


def test_importing_samplers_loads_no_torch_until_an_engine_is_asked_for():
    code = (
        "import sys, samplers; from samplers import OpenAIEngine, EngineConfig, VLLMEngine;"
        "print('torch' in sys.modules, 'vllm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_declared_prices_become_the_charging_prices():
    cfg = EngineConfig(kind="openai", model="m", base_url="http://x/v1", price_per_mtok_in=1.0, price_per_mtok_out=4.0)
    assert cfg.prices().dollars(1_000_000, 0, 500_000) == pytest.approx(3.0)
