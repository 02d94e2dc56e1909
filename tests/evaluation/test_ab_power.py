from __future__ import annotations

import pytest

from shoploop.evaluation.ab import (
    mde_means,
    mde_proportions,
    power_proportions,
    sample_size_means,
    sample_size_proportions,
)


def test_proportions_textbook_case():
    # p1 = .10, p2 = .12, alpha .05 two-sided, power .8 (Fleiss, no continuity correction):
    # (1.95996 sqrt(2 * .11 * .89) + 0.84162 sqrt(.09 + .1056))^2 / .02^2 = 3840.1 -> 3841
    assert sample_size_proportions(0.10, 0.02, relative=False) == 3841
    assert sample_size_proportions(0.10, 0.20) == 3841  # the same change given as a 20% relative lift
    assert power_proportions(0.10, 0.02, 3841, relative=False) == pytest.approx(0.80, abs=1e-3)
    assert mde_proportions(0.10, 3841, relative=False) == pytest.approx(0.02, abs=1e-4)
    # more power or a smaller alpha needs more users
    assert sample_size_proportions(0.10, 0.20, power=0.9) > 3841
    assert sample_size_proportions(0.10, 0.20, alpha=0.01) > 3841


def test_means_textbook_case():
    # sd 1, difference 0.5: 2 * (1.95996 + 0.84162)^2 / 0.25 = 62.8 -> 63 per group
    assert sample_size_means(1.0, 0.5) == 63
    assert mde_means(1.0, 63) == pytest.approx(0.4992, abs=1e-3)
    # unequal allocation: r = 2 -> control needs (1 + 1/2) / 2 of the equal-split size
    assert sample_size_means(1.0, 0.5, ratio=2.0) == 48
