"""Precision selection: CPU flag detection, the environment override, autocast and fp32 heads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from shoploop.text import precision as prec


def write_cpuinfo(path: Path, flags: str) -> str:
    path.write_text(f"processor\t: 0\nmodel name\t: test cpu\nflags\t\t: fpu sse2 {flags}\n\n")
    return str(path)


@pytest.mark.parametrize(
    ("flags", "fast"),
    [("avx2 avx512f", False), ("avx512f avx512_bf16", False), ("amx_tile amx_bf16", True), ("", False)],
)
def test_cpu_flags_decide_fast_bf16(tmp_path: Path, flags: str, fast: bool) -> None:
    assert prec.cpu_has_fast_bf16(write_cpuinfo(tmp_path / "cpuinfo", flags)) is fast


def test_missing_cpuinfo_means_no_bf16(tmp_path: Path) -> None:
    assert prec.cpu_has_fast_bf16(str(tmp_path / "absent")) is False


def test_explicit_precision_wins_and_env_overrides_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPLOOP_PRECISION", "bf16")
    assert prec.resolve_precision("fp32") == "fp32"
    assert prec.resolve_precision("auto") == "bf16"
    monkeypatch.setenv("SHOPLOOP_PRECISION", "FP32")
    assert prec.resolve_precision("auto") == "fp32"
    assert prec.resolve_precision("bf16") == "bf16"


def test_unknown_precision_is_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="precision"):
        prec.resolve_precision("fp16")  # type: ignore[arg-type]


def test_autocast_turns_bf16_on_only_when_asked() -> None:
    layer = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)
    with prec.autocast("bf16"):
        assert layer(x).dtype == torch.bfloat16
    with prec.autocast("fp32"):
        assert layer(x).dtype == torch.float32


def test_keep_fp32_head_returns_fp32_inside_autocast() -> None:
    torch.manual_seed(0)
    body, head = torch.nn.Linear(16, 16), torch.nn.Linear(16, 1)
    prec.keep_fp32(head, None)
    prec.keep_fp32(head)  # idempotent: wrapping twice must not nest
    x = torch.randn(5, 16)
    with prec.autocast("bf16"):
        out = head(body(x))
    assert out.dtype == torch.float32
    reference = head(body(x))
    # only the body ran in bf16, so the scores are close to fp32, not rounded to bf16 steps
    assert torch.allclose(out, reference, atol=0.05)
