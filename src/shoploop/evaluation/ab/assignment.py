"""Deterministic variant assignment by a salted hash of the user id, and exposure records.

Why a hash and not a stored random draw: the same user must see the same variant on every
request, on every server, without a lookup; and a new experiment must re-shuffle users
independently of earlier ones, which a per-experiment salt gives us (two salts map a user
to two unrelated points of [0, 1)).

Two independent hash draws are used per user: one decides whether the user is in the
experiment at all (`traffic_fraction`), the other picks the variant. Keeping them separate
means ramping the traffic fraction up never moves an already-enrolled user to another
variant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

_TWO_64 = float(2**64)


def hash_unit(salt: str, user_id: str) -> float:
    """A uniform-looking number in [0, 1) that depends only on (salt, user_id).

    SHA-256 rather than Python's `hash`: the latter is randomised per process.
    """
    digest = hashlib.sha256(f"{salt}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _TWO_64


def _bucket(u: float, cumulative: Sequence[float]) -> int:
    for i, edge in enumerate(cumulative):
        if u < edge:
            return i
    return len(cumulative) - 1  # float rounding at the top edge


def cumulative_shares(shares: Sequence[float]) -> list[float]:
    """Normalised cumulative edges; shares must be positive (they are renormalised to sum 1)."""
    arr = np.asarray(shares, dtype=float)
    if arr.ndim != 1 or len(arr) == 0 or np.any(arr <= 0) or not np.all(np.isfinite(arr)):
        raise ValueError(f"traffic shares must be positive finite numbers, got {list(shares)}")
    return list(np.cumsum(arr / arr.sum()))


def assign(
    user_id: str,
    *,
    salt: str,
    variants: Sequence[str],
    shares: Sequence[float],
    traffic_fraction: float = 1.0,
) -> str | None:
    """The variant name for `user_id`, or None when the user falls outside `traffic_fraction`."""
    if len(variants) != len(shares):
        raise ValueError("variants and shares must have the same length")
    if not 0.0 < traffic_fraction <= 1.0:
        raise ValueError(f"traffic_fraction must be in (0, 1], got {traffic_fraction}")
    if traffic_fraction < 1.0 and hash_unit(salt + "\x1eenrol", user_id) >= traffic_fraction:
        return None
    return variants[_bucket(hash_unit(salt, user_id), cumulative_shares(shares))]


def assign_many(
    user_ids: Iterable[str],
    *,
    salt: str,
    variants: Sequence[str],
    shares: Sequence[float],
    traffic_fraction: float = 1.0,
) -> list[str | None]:
    """`assign` for many users (same result as calling it one by one)."""
    return [
        assign(u, salt=salt, variants=variants, shares=shares, traffic_fraction=traffic_fraction)
        for u in user_ids
    ]


@dataclass(frozen=True)
class Exposure:
    """A user was shown a variant's output (the unit the analysis counts).

    Only exposed users enter the analysis: users assigned but never served anything from the
    experiment's surface dilute the effect and add noise.
    """

    experiment_id: str
    user_id: str
    variant: str
    at: datetime
    surface: str | None = None
    request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "user_id": self.user_id,
            "variant": self.variant,
            "at": self.at.isoformat(),
            "surface": self.surface,
            "request_id": self.request_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Exposure:
        return cls(
            experiment_id=str(data["experiment_id"]),
            user_id=str(data["user_id"]),
            variant=str(data["variant"]),
            at=datetime.fromisoformat(data["at"]),
            surface=data.get("surface"),
            request_id=data.get("request_id"),
        )
