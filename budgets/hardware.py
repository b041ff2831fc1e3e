"""Hardware profiles and the idealized (roofline) latency of a model call on them.

Following "Cheaply Evaluating Inference Efficiency Metrics for Autoregressive Transformer APIs"
(Narayanan et al. 2023), systems are compared as if on the same hardware without contention: each
prefill and each decode step takes ``max(FLOPs / peak FLOP/s, bytes / memory bandwidth)`` — the
roofline of "LLM Inference Unveiled" (Yuan et al. 2024). A user on a CPU can thus budget the latency a
pipeline would have on an H100, deterministically.

Profiles are data: ``budgets/profiles/hardware.yaml`` ships vendor peaks (dense, no sparsity) for
H100, A100 and L4 and a ``cpu`` profile measured on the project's CI machine;
``~/.config/archon/hardware.yaml`` (or ``$ARCHON_HARDWARE``) adds or overrides profiles, and
``archon hardware measure`` writes one for the local machine (:func:`measure_local`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from budgets.cost import CostModel
from budgets.errors import ProfileError

SHIPPED = Path(__file__).resolve().parent / "profiles" / "hardware.yaml"
USER = Path("~/.config/archon/hardware.yaml")


@dataclass(frozen=True, slots=True)
class HardwareProfile:
    """Peak arithmetic and memory bandwidth of one device.

    Args:
        name: The profile's name (``h100``, ``a100``, ``l4``, ``cpu`` ...).
        peak_tflops: Dense peak TFLOP/s by number format (``float32``, ``bfloat16`` ...); a format
            without an entry uses the ``float32`` one.
        bandwidth_gbs: Memory bandwidth in GB/s.
        memory_gb: Device memory in GB (informational).
        source: Where the figures come from.
    """

    name: str
    peak_tflops: Mapping[str, float]
    bandwidth_gbs: float
    memory_gb: float = 0.0
    source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def peak_flops(self, dtype: str) -> float:
        """Peak FLOP/s for ``dtype`` (falling back to ``float32``)."""
        tflops = self.peak_tflops.get(dtype) or self.peak_tflops.get("float32")
        if not tflops:
            raise ProfileError(f"hardware profile {self.name!r} has no peak for {dtype!r} nor float32")
        return float(tflops) * 1e12

    def seconds(self, flops: float, bytes_moved: float, dtype: str = "bfloat16") -> float:
        """Roofline time of one kernel-bound step: ``max(flops / peak, bytes / bandwidth)``."""
        return max(flops / self.peak_flops(dtype), bytes_moved / (self.bandwidth_gbs * 1e9))

    def call_seconds(
        self, cost: CostModel, prompt_tokens: int, generated: Sequence[int], cached_tokens: int = 0
    ) -> float:
        """Idealized latency of one generate call on this device.

        One prefill of the prompt's uncached tokens, then decode steps in lockstep for the ``n``
        completions: step ``j`` runs the completions still longer than ``j + 1`` tokens, each at
        context ``prompt + j``. (The first token of each completion comes from the prefill.)
        """
        dtype = cost.facts.dtype
        new = prompt_tokens - cached_tokens
        total = 0.0
        if new > 0:
            total += self.seconds(cost.prefill_flops(new, cached_tokens), cost.prefill_bytes(new, cached_tokens), dtype)
        # cost.decode_flops(1, c) and cost.decode_bytes(b, c + 1) inlined: this runs twice per generate call
        per_token = 2 * cost.matmul_params + 2 * cost.head_params
        per_key = 4 * cost.facts.layers * cost.attention_width
        weights, kv = cost.weight_bytes, cost.kv_bytes_per_token
        peak, bandwidth = self.peak_flops(dtype), self.bandwidth_gbs * 1e9
        lengths = sorted(generated)
        batch, short = len(lengths), 0  # completions longer than j + 1 tokens; those not
        for j in range(max(0, (lengths[-1] if lengths else 0) - 1)):
            while lengths[short] - 1 <= j:
                short += 1
            batch_j = batch - short
            context = prompt_tokens + j
            flops = batch_j * (per_token + per_key * (context + 1))
            total += max(flops / peak, (weights + batch_j * (context + 1) * kv) / bandwidth)
        return total

    def score_seconds(self, cost: CostModel, prompt_tokens: int, continuation_tokens: int, cached: int = 0) -> float:
        """Idealized latency of one teacher-forced scoring pass."""
        new = prompt_tokens + continuation_tokens - cached
        flops = cost.score_flops(prompt_tokens, continuation_tokens, cached)
        return self.seconds(flops, cost.prefill_bytes(new, cached), cost.facts.dtype)

    def to_dict(self) -> dict[str, Any]:
        """The profile as YAML-ready data."""
        out: dict[str, Any] = {
            "peak_tflops": dict(self.peak_tflops),
            "bandwidth_gbs": self.bandwidth_gbs,
            "memory_gb": self.memory_gb,
            "source": self.source,
        }
        out.update(self.extra)
        return out


def load_profiles(*paths: str | Path) -> dict[str, HardwareProfile]:
    """All known hardware profiles, by name.

    Read from the shipped file, then the user's (``$ARCHON_HARDWARE`` or ``~/.config/archon/hardware.yaml``),
    then ``paths``; later files add profiles or override earlier ones of the same name.

    Example:
        >>> profiles = load_profiles()
        >>> sorted(p for p in profiles if p in ("a100", "h100", "l4"))
        ['a100', 'h100', 'l4']
        >>> profiles["h100"].peak_flops("bfloat16")
        989000000000000.0
    """
    files = [SHIPPED, Path(os.environ.get("ARCHON_HARDWARE", USER)).expanduser(), *map(Path, paths)]
    out: dict[str, HardwareProfile] = {}
    for f in files:
        if not f.is_file():
            if f in map(Path, paths):
                raise ProfileError(f"hardware profiles: no file {f}")
            continue
        data = yaml.safe_load(f.read_text()) or {}
        for name, entry in (data.get("profiles") or {}).items():
            out[name] = _profile(name, entry, f)
    return out


def profile(name: str, *paths: str | Path) -> HardwareProfile:
    """One profile by name (with a list of the known ones when it is unknown)."""
    profiles = load_profiles(*paths)
    if name not in profiles:
        raise ProfileError(f"unknown hardware profile {name!r}; known: {', '.join(sorted(profiles))}")
    return profiles[name]


def _profile(name: str, entry: Mapping[str, Any], source: Path) -> HardwareProfile:
    try:
        peaks = {str(k): float(v) for k, v in dict(entry["peak_tflops"]).items()}
        bandwidth = float(entry["bandwidth_gbs"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(f"{source}: profiles.{name}: needs peak_tflops by dtype and bandwidth_gbs ({exc})") from exc
    known = {"peak_tflops", "bandwidth_gbs", "memory_gb", "source"}
    return HardwareProfile(
        name=name,
        peak_tflops=peaks,
        bandwidth_gbs=bandwidth,
        memory_gb=float(entry.get("memory_gb", 0) or 0),
        source=str(entry.get("source", "")),
        extra={k: v for k, v in entry.items() if k not in known},
    )


def measure_local(
    name: str = "cpu", *, size: int = 2048, megabytes: int = 256, repeats: int = 5, seconds: float = 1.0
) -> HardwareProfile:
    """Measure this machine's CPU: matrix-product FLOP/s (float32, bfloat16) and copy bandwidth.

    Each dtype's products run ``repeats`` times or for about ``seconds``, whichever ends first; a dtype
    whose ``size`` x ``size`` product would take longer than ``seconds / 4`` (as a 256 x 256 product
    predicts: bfloat16 on a CPU without its instructions) is measured on halved sizes, so that a slow
    dtype costs seconds, not minutes. The profile's ``source`` says which sizes were used.
    """
    import torch

    sizes: dict[str, int] = {}

    def matmul_tflops(dtype: torch.dtype) -> float:
        probe = min(size, 256)  # a small product first predicts the large one's time
        a, b = torch.randn(probe, probe, dtype=dtype), torch.randn(probe, probe, dtype=dtype)
        a @ b
        start = time.perf_counter()
        a @ b
        per_flop = (time.perf_counter() - start) / probe**3
        n = size
        while n > probe and per_flop * n**3 > seconds / 4:
            n //= 2
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b  # warm-up
        done, start = 0, time.perf_counter()
        while done < repeats and (done == 0 or time.perf_counter() - start < seconds):
            a @ b
            done += 1
        sizes[str(dtype).removeprefix("torch.")] = n
        return 2 * n**3 * done / (time.perf_counter() - start) / 1e12

    peaks = {"float32": round(matmul_tflops(torch.float32), 4)}
    with contextlib.suppress(RuntimeError):  # a CPU without bfloat16 matrix products
        peaks["bfloat16"] = round(matmul_tflops(torch.bfloat16), 4)
    x = torch.empty(megabytes * 2**20 // 4, dtype=torch.float32)
    y = torch.empty_like(x)
    y.copy_(x)
    start = time.perf_counter()
    for _ in range(repeats):
        y.copy_(x)
    gbs = 2 * x.numel() * 4 * repeats / (time.perf_counter() - start) / 1e9  # a copy reads and writes
    cpu = platform.processor() or platform.machine()
    source = (
        f"measured by `archon hardware measure` on {time.strftime('%Y-%m-%d')}: {cpu}, "
        f"{torch.get_num_threads()} threads, matmul "
        + ", ".join(f"{n}x{n} {dtype}" for dtype, n in sizes.items())
        + f", {megabytes} MiB copy"
    )
    return HardwareProfile(name, peaks, round(gbs, 2), source=source)


def save_profile(p: HardwareProfile, path: str | Path | None = None) -> Path:
    """Add (or replace) ``p`` in a profiles file (default: the user's); returns the file."""
    target = Path(path or os.environ.get("ARCHON_HARDWARE", USER)).expanduser()
    data: dict[str, Any] = {"profiles": {}}
    if target.is_file():
        data = yaml.safe_load(target.read_text()) or {"profiles": {}}
        data.setdefault("profiles", {})
    data["profiles"][p.name] = p.to_dict()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target
