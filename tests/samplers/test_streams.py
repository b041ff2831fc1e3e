"""Counter-based random streams: the tensor form equals the integer reference, and the numbers look uniform."""

import random

import pytest
import torch

from samplers.streams import mix64, random_keys, stream_key, uniform, uniforms


def test_the_tensor_form_equals_the_integer_reference_bit_for_bit():
    rng = random.Random(0)
    keys = [rng.randrange(-(2**63), 2**63) for _ in range(2000)] + [-(2**63), 2**63 - 1, 0, -1]
    tensor = torch.tensor(keys, dtype=torch.long)
    for step in (0, 1, 2, 63, 4096, 10**9):
        assert uniforms(tensor, step).tolist() == [uniform(k, step) for k in keys]


def test_mix64_is_splitmix64s_finalizer():
    # SplitMix64 seeded with 0: its first output is mix64 of the state after one increment
    assert mix64(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF
    assert mix64(2 * 0x9E3779B97F4A7C15) == 0x6E789E6AA1B965F4


def test_uniforms_are_uniform_and_consecutive_steps_uncorrelated():
    keys = torch.tensor([stream_key(3, i) for i in range(20000)], dtype=torch.long)
    u0, u1 = uniforms(keys, 0), uniforms(keys, 1)
    assert float(u0.min()) >= 0 and float(u0.max()) < 1
    counts = torch.histc(u0, bins=20, min=0, max=1)
    expected = len(u0) / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 43.8  # 19 degrees of freedom, p = 0.001
    corr = torch.corrcoef(torch.stack([u0, u1]))[0, 1]
    assert abs(float(corr)) < 0.03


def test_keys_differ_by_seed_and_index_and_any_seed_is_taken():
    keys = [stream_key(s, i) for s in (0, 1, -1, 2**64 + 1, 2**70 + 5) for i in range(100)]
    assert len(set(keys)) == len(keys) - 100  # 2**64 + 1 is seed 1
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert stream_key(2**64 + 1, 7) == stream_key(1, 7)


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))],
)
def test_random_keys_come_from_the_generator_and_uniforms_run_on_the_device(device):
    a = random_keys(torch.Generator().manual_seed(4), 5)
    b = random_keys(torch.Generator().manual_seed(4), 5)
    assert a == b and len(set(a)) == 5
    keys = torch.tensor(a, dtype=torch.long)
    assert uniforms(keys.to(device), 9).cpu().tolist() == uniforms(keys, 9).tolist()
