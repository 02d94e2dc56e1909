"""Numeric precision for the MiniLM-based models on CPU: fp32, or bf16 autocast where it is fast.

On CPUs with bfloat16 matrix tiles (Intel AMX) autocasting the transformer's matrix products to
bf16 roughly halves the time of a training step and of scoring a batch
(benchmarks/search_relevance.py on Home Depot, 2-core AMX box: search + cross-encoder top-50 p50
198 -> 80 ms with the same NDCG@10; cross-encoder training steps in a 12-minute budget roughly
doubled), while the weights and the optimiser state stay fp32. AVX512-BF16 alone (bf16 dot
products without the tiles) is NOT enough: on a 2-core Xeon with avx512_bf16 but no AMX, MiniLM
took 1.05 s per training step in bf16 vs 0.60-0.82 s in fp32 (batch 64 x 32 word pieces) and
232 vs 141 ms to score 56 pairs (torch 2.13, oneDNN), so ``"auto"`` turns bf16 on only with AMX.
``SHOPLOOP_PRECISION=fp32|bf16`` overrides ``"auto"`` for a whole process.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

Precision = Literal["auto", "fp32", "bf16"]

_BF16_FLAGS = frozenset({"amx_bf16"})


@functools.cache
def cpu_has_fast_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU advertises AMX bf16 tiles (Linux ``/proc/cpuinfo`` flags)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(_BF16_FLAGS & set(line.split(":", 1)[-1].split()))
    return False


def resolve_precision(precision: Precision) -> Literal["fp32", "bf16"]:
    """The concrete precision for a configured one (``"auto"`` asks the environment, then the CPU)."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    if precision != "auto":
        return precision
    forced = os.environ.get("SHOPLOOP_PRECISION", "").strip().lower()
    if forced in ("fp32", "bf16"):
        return forced  # type: ignore[return-value]
    return "bf16" if cpu_has_fast_bf16() else "fp32"


@contextlib.contextmanager
def autocast(precision: Precision) -> Iterator[None]:
    """Run the enclosed torch forward pass in bf16 autocast when ``precision`` resolves to bf16."""
    if resolve_precision(precision) != "bf16":
        yield
        return
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16):
        yield


def keep_fp32(*modules: object) -> None:
    """Make each given torch module run in fp32 even inside a bf16 autocast region.

    Meant for a model's small output head: autocast would round the final scores to bf16's 8-bit
    mantissa (steps of ~0.01 around a logit of 3), tying candidates that fp32 keeps apart, while
    the head costs nothing next to the encoder.
    """
    import torch

    for module in modules:
        if module is None or getattr(module, "_shoploop_fp32", False):
            continue
        inner = module.forward  # type: ignore[attr-defined]

        def forward(*args, _inner=inner, **kwargs):
            with torch.autocast("cpu", enabled=False):
                args = tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)
                return _inner(*args, **kwargs)

        module.forward = forward  # type: ignore[attr-defined]
        module._shoploop_fp32 = True  # type: ignore[attr-defined]
