"""Shared fixtures. Tests build tiny stores and engines and pass them in (no import-time state)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data`, or a skip saying why when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public datasets not found at {SHARED_DATA} (see ../shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture
def t0() -> datetime:
    return datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


# The machine has 2 cores shared with model training; wall-clock deadlines would make
# property tests flaky without making them stricter.
try:
    from hypothesis import settings

    settings.register_profile("shoploop", deadline=None, max_examples=100)
    settings.load_profile("shoploop")
except ImportError:  # pragma: no cover
    pass
