"""Off-policy estimators: what would a new policy's reward be, judged from logs of an old one.

Modelled on zr-obp (Saito et al., 2021): estimators are plain functions over arrays, kept apart
from the policies that produce action probabilities and from the reward models (``ope_models``).
Every estimator returns a point estimate of the *mean reward per logged round* (for a ranked
list logged one row per slot, that is the mean reward per slot; multiply by the list length
for clicks per list).

Shared inputs, one entry per logged round ``i`` (shape ``(n,)`` unless stated):

* ``reward``   observed reward r_i (click = 1.0).
* ``pscore``   probability that the logging policy took the logged action a_i (at its slot).
* ``pi_e``     probability that the evaluation policy takes a_i (at the same slot).
  The importance weight is ``w_i = pi_e / pscore``.
* ``q_logged`` a reward model's prediction for the logged action, q(x_i, a_i).
* ``v_model``  the reward model's value of the evaluation policy in round i,
  ``sum_a pi_e(a|x_i) q(x_i, a)``.
* ``position`` the 0-based slot of the row, for position-based (slate) estimators.

Estimators: IPS (Horvitz-Thompson), SNIPS, clipped IPS, DM, DR (Dudik et al., 2011),
SNDR, Switch-DR (Wang et al., 2017), DR with optimistic shrinkage (Su et al., 2020), and
position-wise versions for ranked lists under the position-based click model, where a list's
reward is the sum of independent per-slot rewards and the independent-IPS estimator (Li et al.,
2018) weights each slot by the marginal probabilities of that slot only.

``bootstrap_ci`` resamples rounds (rows) and recomputes any estimator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ConfidenceInterval",
    "bootstrap_ci",
    "clipped_ips",
    "direct_method",
    "doubly_robust",
    "dr_os",
    "dr_os_lambda_by_bound",
    "importance_weights",
    "ips",
    "logged_action_prob",
    "model_policy_value",
    "per_position",
    "position_ips",
    "position_snips",
    "sndr",
    "snips",
    "switch_dr",
    "switch_tau_by_bound",
]

FloatArray = NDArray[np.float64]


def _f(x: ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


def _same_len(*arrays: FloatArray) -> int:
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise ValueError(f"all per-round arrays must have the same length, got {[a.shape for a in arrays]}")
    return n


# ---------------------------------------------------------------- helpers over policies


def importance_weights(pi_e: ArrayLike, pscore: ArrayLike) -> FloatArray:
    """``w = pi_e / pscore`` (n,). Raises if a logged action had zero logging probability."""
    pe, pb = _f(pi_e), _f(pscore)
    _same_len(pe, pb)
    if (pb <= 0).any():
        raise ValueError("pscore must be > 0 for every logged round (the logger never takes a 0-prob action)")
    return pe / pb


def logged_action_prob(
    action_dist: ArrayLike, action: ArrayLike, position: ArrayLike | None = None
) -> FloatArray:
    """Probability the evaluation policy gives each logged action.

    action_dist: (n, n_actions) or (n, n_actions, len_list); action: (n,) int; position: (n,) 0-based
    slot (required for the 3-D form). Returns (n,).
    """
    ad = np.asarray(action_dist, dtype=np.float64)
    a = np.asarray(action, dtype=np.int64).reshape(-1)
    rows = np.arange(a.shape[0])
    if ad.ndim == 2:
        return ad[rows, a]
    if ad.ndim == 3:
        if position is None:
            raise ValueError("position is required with a (n, n_actions, len_list) action_dist")
        return ad[rows, a, np.asarray(position, dtype=np.int64).reshape(-1)]
    raise ValueError(f"action_dist must be 2-D or 3-D, got shape {ad.shape}")


def model_policy_value(
    action_dist: ArrayLike, q_hat: ArrayLike, position: ArrayLike | None = None
) -> FloatArray:
    """``v_model`` for DM/DR: ``sum_a pi_e(a | x_i, slot_i) q(x_i, a, slot_i)`` per round.

    action_dist and q_hat: both (n, n_actions) or both (n, n_actions, len_list) (q_hat may also be
    broadcastable, e.g. (1, n_actions, len_list) for a context-free model). Returns (n,).
    """
    ad = np.asarray(action_dist, dtype=np.float64)
    q = np.asarray(q_hat, dtype=np.float64)
    if ad.ndim == 2:
        return (ad * q).sum(axis=1)
    if position is None:
        raise ValueError("position is required with a (n, n_actions, len_list) action_dist")
    pos = np.asarray(position, dtype=np.int64).reshape(-1)
    per_slot = (ad * q).sum(axis=1)  # (n, len_list)
    return per_slot[np.arange(pos.shape[0]), pos]


# ---------------------------------------------------------------- single-slot estimators


def ips(reward: ArrayLike, weight: ArrayLike) -> float:
    """Inverse propensity scoring: ``mean(w * r)``. Unbiased when the logger covers pi_e's support."""
    r, w = _f(reward), _f(weight)
    if _same_len(r, w) == 0:
        return float("nan")
    return float(np.mean(w * r))


def snips(reward: ArrayLike, weight: ArrayLike) -> float:
    """Self-normalised IPS: ``sum(w r) / sum(w)``. Biased but consistent; always within
    [min r, max r], and far less variable when weights are large (Swaminathan & Joachims, 2015)."""
    r, w = _f(reward), _f(weight)
    _same_len(r, w)
    s = w.sum()
    return float((w * r).sum() / s) if s > 0 else float("nan")


def clipped_ips(reward: ArrayLike, weight: ArrayLike, max_weight: float) -> float:
    """IPS with weights capped at ``max_weight`` (trades a downward bias for variance)."""
    if max_weight <= 0:
        raise ValueError("max_weight must be positive")
    return ips(reward, np.minimum(_f(weight), max_weight))


def direct_method(v_model: ArrayLike) -> float:
    """Direct method: the reward model's value of the policy, averaged over logged contexts."""
    v = _f(v_model)
    return float(v.mean()) if v.size else float("nan")


def doubly_robust(reward: ArrayLike, weight: ArrayLike, q_logged: ArrayLike, v_model: ArrayLike) -> float:
    """DR: ``mean(v + w (r - q))`` — unbiased if either the weights or the model are right."""
    r, w, q, v = _f(reward), _f(weight), _f(q_logged), _f(v_model)
    if _same_len(r, w, q, v) == 0:
        return float("nan")
    return float(np.mean(v + w * (r - q)))


def sndr(reward: ArrayLike, weight: ArrayLike, q_logged: ArrayLike, v_model: ArrayLike) -> float:
    """Self-normalised DR: ``mean(v) + sum(w (r - q)) / sum(w)``."""
    r, w, q, v = _f(reward), _f(weight), _f(q_logged), _f(v_model)
    _same_len(r, w, q, v)
    s = w.sum()
    if s <= 0:
        return float("nan")
    return float(v.mean() + (w * (r - q)).sum() / s)


def switch_dr(
    reward: ArrayLike, weight: ArrayLike, q_logged: ArrayLike, v_model: ArrayLike, tau: float
) -> float:
    """Switch-DR: apply the DR correction only where ``w <= tau`` and trust the model elsewhere.

    ``tau = inf`` is DR, ``tau = 0`` is DM.
    """
    r, w, q, v = _f(reward), _f(weight), _f(q_logged), _f(v_model)
    if _same_len(r, w, q, v) == 0:
        return float("nan")
    keep = w <= tau
    return float(np.mean(v + keep * w * (r - q)))


def _shrunk_weights(w: FloatArray, lam: float) -> FloatArray:
    if np.isinf(lam):
        return w
    if lam <= 0:
        return np.zeros_like(w)
    return lam * w / (w**2 + lam)


def dr_os(reward: ArrayLike, weight: ArrayLike, q_logged: ArrayLike, v_model: ArrayLike, lam: float) -> float:
    """DR with optimistic shrinkage (Su et al., 2020): weights ``lam w / (w^2 + lam)``.

    ``lam = inf`` is DR, ``lam = 0`` is DM. Shrinks large weights smoothly instead of cutting them.
    """
    r, w, q, v = _f(reward), _f(weight), _f(q_logged), _f(v_model)
    if _same_len(r, w, q, v) == 0:
        return float("nan")
    ws = _shrunk_weights(w, lam)
    return float(np.mean(v + ws * (r - q)))


# ---------------------------------------------------------------- hyper-parameters without ground truth


def _bias_variance_bound(terms: FloatArray, bias_bound: float) -> float:
    n = terms.shape[0]
    return float(bias_bound**2 + terms.var(ddof=1) / max(n, 1))


def switch_tau_by_bound(
    reward: ArrayLike,
    weight: ArrayLike,
    q_logged: ArrayLike,
    v_model: ArrayLike,
    candidates: ArrayLike,
    max_reward: float = 1.0,
) -> float:
    """Pick Switch-DR's ``tau`` by the estimated-MSE criterion of Wang et al. (2017).

    For each candidate: empirical variance / n plus a squared upper bound of the bias the model can
    add on the rounds it takes over, ``(max_reward * mean(w * 1[w > tau]))^2``. Uses only the
    logged data, never the quantity being estimated.
    """
    r, w, q, v = _f(reward), _f(weight), _f(q_logged), _f(v_model)
    best, best_score = float("inf"), float("inf")
    for tau in _f(candidates):
        keep = w <= tau
        terms = v + keep * w * (r - q)
        bias = max_reward * float(np.mean(w * ~keep))
        score = _bias_variance_bound(terms, bias)
        if score < best_score:
            best, best_score = float(tau), score
    return best


def dr_os_lambda_by_bound(
    reward: ArrayLike,
    weight: ArrayLike,
    q_logged: ArrayLike,
    v_model: ArrayLike,
    candidates: ArrayLike,
) -> float:
    """Pick DR-os's ``lam`` minimising variance / n + squared bias bound (Su et al., 2020, sec. 4).

    The bias bound of shrinkage is ``mean(|w - w_lam| * |r - q|)``: how far the shrunk weights move
    the correction term on the data we have.
    """
    r, w, q, v = _f(reward), _f(weight), _f(q_logged), _f(v_model)
    best, best_score = float("inf"), float("inf")
    resid = r - q
    for lam in _f(candidates):
        ws = _shrunk_weights(w, float(lam))
        terms = v + ws * resid
        bias = float(np.mean(np.abs(w - ws) * np.abs(resid)))
        score = _bias_variance_bound(terms, bias)
        if score < best_score:
            best, best_score = float(lam), score
    return best


# ---------------------------------------------------------------- ranked lists (position-based model)


def per_position(
    estimator: Callable[..., float],
    position: ArrayLike,
    len_list: int,
    position_weights: ArrayLike | None = None,
    **arrays: ArrayLike,
) -> float:
    """Apply a single-slot estimator separately to each slot and average the slot values.

    Under the position-based model a list's value is the sum of its slots' values, and every slot
    has its own (marginal) action distribution, so each slot is a separate single-slot problem
    (the independent-IPS estimator of Li et al., 2018 when ``estimator`` is ``ips``). Estimating
    per slot and then averaging with known slot weights removes the noise that comes from how
    many rows each slot happened to get in the log.

    position: (n,) 0-based slot; len_list: number of slots; position_weights: (len_list,) the
    evaluation policy's share of rows per slot (default equal: every list fills every slot);
    arrays: keyword per-round arrays passed (row-filtered) to ``estimator``. Slots with no rows
    are skipped and the remaining weights renormalised. Returns mean value per slot.
    """
    pos = np.asarray(position, dtype=np.int64).reshape(-1)
    pw = np.full(len_list, 1.0 / len_list) if position_weights is None else _f(position_weights)
    if pw.shape[0] != len_list:
        raise ValueError("position_weights must have len_list entries")
    cols = {k: _f(v) for k, v in arrays.items()}
    values, weights = [], []
    for p in range(len_list):
        m = pos == p
        if not m.any():
            continue
        values.append(estimator(**{k: v[m] for k, v in cols.items()}))
        weights.append(pw[p])
    if not values:
        return float("nan")
    wts = np.asarray(weights)
    return float(np.dot(values, wts) / wts.sum())


def position_ips(
    reward: ArrayLike,
    weight: ArrayLike,
    position: ArrayLike,
    len_list: int,
    position_weights: ArrayLike | None = None,
) -> float:
    """Independent (position-wise) IPS for ranked lists: IPS per slot, averaged over slots.

    weight must use per-slot marginal probabilities: ``pi_e(a at slot) / pi_b(a at slot)``.
    """
    return per_position(ips, position, len_list, position_weights, reward=reward, weight=weight)


def position_snips(
    reward: ArrayLike,
    weight: ArrayLike,
    position: ArrayLike,
    len_list: int,
    position_weights: ArrayLike | None = None,
) -> float:
    """Position-wise self-normalised IPS: SNIPS within each slot, averaged over slots."""
    return per_position(snips, position, len_list, position_weights, reward=reward, weight=weight)


# ---------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class ConfidenceInterval:
    estimate: float  # the estimator on the full data
    low: float
    high: float
    std: float  # bootstrap standard deviation
    alpha: float
    n_boot: int


def bootstrap_ci(
    estimator: Callable[[Mapping[str, FloatArray]], float],
    data: Mapping[str, ArrayLike],
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> ConfidenceInterval:
    """Percentile bootstrap over logged rounds.

    estimator: called with a dict of per-round arrays (same keys as ``data``), returns a float.
    data: per-round arrays, all of length n (rows are resampled together, so any array that is
        not per-round must be closed over by ``estimator`` instead).
    Returns the full-data estimate and the ``alpha/2, 1-alpha/2`` percentiles of ``n_boot``
    resampled estimates.
    """
    if n_boot < 2:
        raise ValueError("n_boot must be >= 2")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    cols = {k: np.asarray(v) for k, v in data.items()}
    lengths = {v.shape[0] for v in cols.values()}
    if len(lengths) != 1:
        raise ValueError(f"all arrays in data must have the same length, got {lengths}")
    n = lengths.pop()
    rng = np.random.default_rng(seed)
    point = float(estimator(cols))
    boots = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, size=n)
        boots[b] = estimator({k: v[idx] for k, v in cols.items()})
    lo, hi = np.nanquantile(boots, [alpha / 2, 1 - alpha / 2])
    return ConfidenceInterval(point, float(lo), float(hi), float(np.nanstd(boots, ddof=1)), alpha, n_boot)
