"""Counter-based random streams: a row's uniform at decode step ``t`` is a hash of (its key, ``t``).

Every sample being decoded has a 64-bit key. The uniform it draws at step ``t`` is SplitMix64's
finalizer applied to ``key + (t + 1) * golden``, its top 24 bits scaled to [0, 1): a pure function of
the key and the step. One batch of elementwise tensor operations draws the uniforms of every row at
once, and a row draws the same numbers whatever else shares its batch, whenever it runs and on
whatever device.

The key of sample ``i`` of a request seeded with ``s`` is :func:`stream_key` ``(s, i)``; it does not
depend on how many samples the request asks for, so sample ``i`` is the same for any ``n > i``.
Unseeded samples take keys from the engine's own generator.

Arithmetic is on int64 tensors: products and sums wrap modulo 2**64 as unsigned ones would (what CPU
and CUDA kernels do; PyTorch does not promise it for every backend), and right shifts are made logical
by masking. :func:`uniform` is the same function on Python integers, and a test checks they agree.
"""

from __future__ import annotations

import torch

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB
_BITS = 24  # float32 holds 24-bit integers exactly


def _signed(x: int) -> int:
    """``x`` modulo 2**64 as a signed 64-bit integer (what an int64 tensor holds)."""
    x &= _MASK
    return x - (1 << 64) if x >> 63 else x


def mix64(x: int) -> int:
    """SplitMix64's finalizer on an unsigned 64-bit integer (Python ints; any int is taken modulo 2**64).

    Example:
        >>> mix64(0), mix64(1) != mix64(2)
        (0, True)
    """
    z = x & _MASK
    z = ((z ^ (z >> 30)) * _C1) & _MASK
    z = ((z ^ (z >> 27)) * _C2) & _MASK
    return z ^ (z >> 31)


def stream_key(seed: int, index: int) -> int:
    """The key (a signed 64-bit integer) of sample ``index`` of a request seeded with ``seed``.

    Any integer seed is taken modulo 2**64.

    Example:
        >>> stream_key(7, 0) == stream_key(7, 0), stream_key(7, 0) == stream_key(7, 1)
        (True, False)
        >>> -(2**63) <= stream_key(-3, 5) < 2**63
        True
    """
    return _signed(mix64(mix64(seed) + (index + 1) * _GOLDEN))


def random_keys(generator: torch.Generator, n: int) -> list[int]:
    """``n`` keys drawn from ``generator`` (for samples of unseeded requests)."""
    drawn = torch.randint(-(2**63), 2**63 - 1, (n,), generator=generator, dtype=torch.int64)
    return [int(k) for k in drawn.tolist()]


def uniform(key: int, step: int) -> float:
    """The uniform in [0, 1) that the stream ``key`` draws at ``step`` (the reference for :func:`uniforms`).

    Example:
        >>> 0 <= uniform(stream_key(1, 0), 0) < 1
        True
    """
    z = mix64(key + (step + 1) * _GOLDEN)
    return (z >> (64 - _BITS)) / float(1 << _BITS)


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 values."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def uniforms(keys: torch.Tensor, step: int) -> torch.Tensor:
    """The uniforms in [0, 1) (float32, on ``keys``' device) that the streams ``keys`` (int64) draw at ``step``.

    Example:
        >>> keys = torch.tensor([stream_key(1, 0), stream_key(1, 1)])
        >>> uniforms(keys, 3).tolist() == [uniform(int(k), 3) for k in keys]
        True
    """
    z = keys + _signed((step + 1) * _GOLDEN)
    z = (z ^ _shr(z, 30)) * _signed(_C1)
    z = (z ^ _shr(z, 27)) * _signed(_C2)
    z = z ^ _shr(z, 31)
    return _shr(z, 64 - _BITS).to(torch.float32) * (1.0 / (1 << _BITS))
