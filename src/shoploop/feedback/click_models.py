"""Position bias: how likely a shopper is to look at each slot, estimated from the logs.

Clicks confound two things: was the item looked at (examination, which falls with the
slot) and was it wanted (relevance). Learning to rank from clicks must divide the first
out. Two estimators over the same logged rows (one row = one shown item: a (query,
item) pair id, its 1-based position, click 0/1):

* `harvest_position_bias` — intervention harvesting (Agarwal et al., WSDM 2019): the
  exploration policy shows the same (query, item) at different slots by chance, so the
  ratio of its click rates at slot k and slot 1, pooled over pairs seen at both, is
  theta_k / theta_1 with relevance cancelled. Needs randomisation (or several rankers).
* `PositionBasedModel` — the position-based click model P(click) = theta_k * gamma_qd,
  fitted by expectation-maximisation (Chuklin, Markov & de Rijke, "Click Models for Web
  Search", 2015, ch. 4). It uses every row, also slots the exploration never permutes,
  but is only identified where pairs move between slots.

Both report an `ExaminationCurve`, normalised so theta_1 = 1: inverse propensity
weighting needs only ratios, and absolute examination is not identifiable from clicks.

Where the slots come from matters. On lists a learned ranker ordered, an item moves up
*because* it was clicked low down, and both estimators above overestimate deep slots on
such logs: on our simulated search traffic with a true 1/k curve, EM over all rows put
slot 10 at 0.28-0.43 instead of 0.10, and EM restricted to the shuffled lists was still
0.27 for a true 0.17 at slot 6 after 5,000 of them. `examination_from_randomisation`
uses what the exploration logs about each shuffled list — every item's rank in the
ranker's order and the exact probability of the slot it got — for an inverse-propensity
estimate that is unbiased by construction, and smooths it with a power law (an assumption,
named in the curve's method; the raw per-slot estimates are kept beside it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class ExaminationCurve:
    """Relative examination probability per 1-based position (theta[0] is position 1 = 1.0)."""

    theta: tuple[float, ...]
    method: str
    n_rows: int
    raw: tuple[float, ...] | None = None  # unsmoothed per-slot estimates, when the method smooths

    def at(self, positions: ArrayLike, floor: float = 1e-3) -> np.ndarray:
        """Examination for 1-based `positions` (n,); slots past the curve reuse its last value."""
        pos = np.asarray(positions, dtype=np.int64)
        theta = np.asarray(self.theta, dtype=float)
        idx = np.clip(pos - 1, 0, len(theta) - 1)
        return np.maximum(theta[idx], floor)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "theta": [round(t, 5) for t in self.theta],
            "method": self.method,
            "n_rows": self.n_rows,
        }
        if self.raw is not None:
            out["raw"] = [round(t, 5) for t in self.raw]
        return out

    @classmethod
    def power_law(cls, eta: float, n_positions: int) -> ExaminationCurve:
        """theta_k = 1 / k^eta, the shape the simulator and many eye-tracking studies use."""
        return cls(tuple(float(k**-eta) for k in range(1, n_positions + 1)), f"power(eta={eta})", 0)


def _rows(
    pair: ArrayLike, position: ArrayLike, click: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.asarray(pair, dtype=np.int64).reshape(-1)
    k = np.asarray(position, dtype=np.int64).reshape(-1)
    c = np.asarray(click, dtype=float).reshape(-1)
    if not (p.shape == k.shape == c.shape):
        raise ValueError("pair, position and click must have the same length")
    if len(k) and k.min() < 1:
        raise ValueError("positions are 1-based")
    return p, k, (c > 0).astype(float)


def harvest_position_bias(
    pair: ArrayLike,
    position: ArrayLike,
    click: ArrayLike,
    n_positions: int,
    *,
    min_pairs: int = 5,
) -> ExaminationCurve:
    """theta_k / theta_1 from (query, item) pairs the logs show at both slot 1 and slot k.

    pair: (n,) int id of the (query, item); position: (n,) 1-based; click: (n,) 0/1.
    For each k the ratio is sum_pairs h * ctr(k) / sum_pairs h * ctr(1), where h is the
    harmonic mean of the pair's impression counts at the two slots (a pair seen 1,000
    times at slot 1 but twice at slot k says little about slot k). Slots with fewer than
    `min_pairs` overlapping pairs are chained through slot k-1 instead; slots with no
    data keep the previous slot's value.
    """
    p, k, c = _rows(pair, position, click)
    in_range = k <= n_positions
    p, k, c = p[in_range], k[in_range], c[in_range]
    n_pairs = int(p.max()) + 1 if len(p) else 0
    shown = np.zeros((n_pairs, n_positions))
    clicks = np.zeros((n_pairs, n_positions))
    np.add.at(shown, (p, k - 1), 1.0)
    np.add.at(clicks, (p, k - 1), c)

    def ratio(a: int, b: int) -> tuple[float, int]:
        both = (shown[:, a] > 0) & (shown[:, b] > 0)
        if not both.any():
            return float("nan"), 0
        na, nb = shown[both, a], shown[both, b]
        h = 2 * na * nb / (na + nb)
        num = float((h * clicks[both, a] / na).sum())
        den = float((h * clicks[both, b] / nb).sum())
        return (num / den if den > 0 else float("nan")), int(both.sum())

    theta = [1.0]
    for slot in range(1, n_positions):
        direct, overlap = ratio(slot, 0)
        if overlap >= min_pairs and np.isfinite(direct):
            theta.append(direct)
            continue
        step, overlap = ratio(slot, slot - 1)
        theta.append(theta[-1] * step if overlap and np.isfinite(step) else theta[-1])
    clipped = tuple(float(min(max(t, 1e-3), 1.0)) for t in theta)
    return ExaminationCurve(clipped, "intervention-harvesting", len(p))


@dataclass(frozen=True)
class PBMConfig:
    n_positions: int = 10
    iterations: int = 300
    tol: float = 1e-6
    # Beta(prior_a, prior_b) prior on each pair's relevance (MAP-EM). (1, 1) is plain
    # maximum likelihood: a stronger prior pulls rarely shown pairs towards 0.5, which
    # measurably biases theta upwards on logs with many such pairs, so it is opt-in.
    prior_a: float = 1.0
    prior_b: float = 1.0


class PositionBasedModel:
    """P(click | pair, slot k) = theta_k * gamma_pair, fitted by EM."""

    def __init__(self, config: PBMConfig = PBMConfig()) -> None:
        self.config = config

    def fit(self, pair: ArrayLike, position: ArrayLike, click: ArrayLike) -> PositionBasedModel:
        p, k, c = _rows(pair, position, click)
        keep = k <= self.config.n_positions
        p, k, c = p[keep], k[keep] - 1, c[keep]
        n_pos = self.config.n_positions
        n_pairs = int(p.max()) + 1 if len(p) else 0
        theta = np.full(n_pos, 0.5)
        gamma = np.full(n_pairs, 0.5)
        rows_pos = np.bincount(k, minlength=n_pos).astype(float)
        rows_pair = np.bincount(p, minlength=n_pairs).astype(float)
        a, b = self.config.prior_a, self.config.prior_b
        self.iterations_ = 0
        for it in range(self.config.iterations):
            t, g = theta[k], gamma[p]
            denom = np.maximum(1.0 - t * g, 1e-12)
            # Posterior of "examined" and of "relevant" for each row, given its click.
            examined = c + (1 - c) * t * (1 - g) / denom
            relevant = c + (1 - c) * (1 - t) * g / denom
            new_theta = np.bincount(k, weights=examined, minlength=n_pos) / np.maximum(rows_pos, 1.0)
            new_gamma = (np.bincount(p, weights=relevant, minlength=n_pairs) + a - 1 + 1e-9) / (
                rows_pair + a + b - 2 + 2e-9
            )
            new_theta = np.where(rows_pos > 0, new_theta, theta)
            delta = max(
                np.abs(new_theta - theta).max(initial=0.0), np.abs(new_gamma - gamma).max(initial=0.0)
            )
            theta, gamma = np.clip(new_theta, 1e-4, 1.0), np.clip(new_gamma, 1e-4, 1 - 1e-4)
            self.iterations_ = it + 1
            if delta < self.config.tol:
                break
        self.theta_ = theta
        self.gamma_ = gamma
        self.n_rows_ = len(k)
        return self

    def curve(self) -> ExaminationCurve:
        """theta normalised to theta_1 = 1 (and made non-increasing past empty slots)."""
        theta = self.theta_ / max(self.theta_[0], 1e-12)
        return ExaminationCurve(tuple(float(min(t, 1.0)) for t in theta), "pbm-em", self.n_rows_)

    def click_probability(self, pair: ArrayLike, position: ArrayLike) -> np.ndarray:
        p = np.asarray(pair, dtype=np.int64)
        k = np.clip(np.asarray(position, dtype=np.int64) - 1, 0, self.config.n_positions - 1)
        return self.theta_[k] * self.gamma_[p]


def power_law_exponent(theta: ArrayLike, weights: ArrayLike | None = None) -> float:
    """eta of theta_k = k^-eta fitted to slots 2.. of `theta` by (weighted) least squares in
    log-log through theta_1 = 1; slots with theta <= 0 or zero weight are left out."""
    t = np.asarray(theta, dtype=float)
    if len(t) < 2:
        raise ValueError("need at least two slots to fit a power law")
    w = np.ones(len(t) - 1) if weights is None else np.asarray(weights, dtype=float)[1:]
    use = (t[1:] > 0) & (w > 0)
    if not use.any():
        return 0.0
    logk = np.log(np.arange(2, len(t) + 1))[use]
    logt = np.log(np.minimum(t[1:][use], 1.0))
    w = w[use]
    return float(max(-(w * logk) @ logt / ((w * logk) @ logk), 0.0))


def examination_from_randomisation(
    slot: ArrayLike, probability: ArrayLike, click: ArrayLike, *, n_positions: int
) -> ExaminationCurve:
    """The curve from explored lists, by inverse propensity weighting over the randomisation.

    Rows are the re-ordered slots of explored lists whose item came from the top ranks that
    can reach *every* re-ordered slot (the common support; `ExplorationPolicy
    .full_support_ranks`); `probability` is P(that item in that slot | exploring), logged at
    serving time. Then E[sum of click / probability at slot k] = theta_k * (summed relevance
    of the support items) whatever the items and however the ranker scored them, so the
    ratio to slot 1 estimates theta_k / theta_1 without bias (the idea behind the swap
    interventions of Joachims et al., WSDM 2017). Those per-slot ratios are noisy at deep
    slots (few clicks), so the curve reported is the power law k^-eta fitted to them weighted
    by their click counts, which also extends it past the re-ordered slots; the raw ratios are kept in
    `raw` for comparison.
    """
    k = np.asarray(slot, dtype=np.int64).reshape(-1)
    p = np.asarray(probability, dtype=float).reshape(-1)
    c = (np.asarray(click, dtype=float).reshape(-1) > 0).astype(float)
    if not (k.shape == p.shape == c.shape):
        raise ValueError("slot, probability and click must have the same length")
    if len(k) and (k.min() < 1 or not ((p > 0) & (p <= 1)).all()):
        raise ValueError("slots are 1-based and probabilities in (0, 1]")
    window = int(k.max(initial=0))
    weighted = np.bincount(k - 1, weights=c / np.where(p > 0, p, 1.0), minlength=window)
    clicks = np.bincount(k - 1, weights=c, minlength=window)
    if window < 2 or weighted[0] <= 0:
        raise ValueError("need clicks at slot 1 and rows from at least two slots")
    raw = weighted / weighted[0]
    eta = power_law_exponent(raw, clicks)
    method = f"ips on explored lists (slots 1-{window}), power law eta={eta:.2f}"
    theta = ExaminationCurve.power_law(eta, n_positions).theta
    return ExaminationCurve(theta, method, len(k), raw=tuple(float(r) for r in raw))
