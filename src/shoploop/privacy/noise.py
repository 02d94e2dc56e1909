"""Noise for aggregates that leave the shop (reports, shared dashboards).

The Laplace mechanism: adding Laplace(sensitivity / epsilon) noise to a count makes the
published number epsilon-differentially private with respect to one shopper's presence
(Dwork & Roth, 2014). Counts are clipped at zero after noising, which is
post-processing and keeps the guarantee.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def laplace_counts(
    counts: Mapping[str, float], *, epsilon: float, sensitivity: float = 1.0, seed: int | None = None
) -> dict[str, float]:
    """Noisy copies of `counts`; `sensitivity` = most events one shopper adds to one count."""
    if epsilon <= 0:
        raise ValueError("epsilon must be > 0")
    if sensitivity <= 0:
        raise ValueError("sensitivity must be > 0")
    rng = np.random.default_rng(seed)
    scale = sensitivity / epsilon
    return {key: max(0.0, float(value + rng.laplace(0.0, scale))) for key, value in counts.items()}
