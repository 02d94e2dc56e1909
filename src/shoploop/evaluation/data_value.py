"""What is each slice of data worth to a model? Leave-one-slice-out and Monte-Carlo Shapley.

The caller supplies `utility(train_indices) -> float`: train a model on the chosen rows
(events) and return its held-out validation metric. This module never sees the model, so
it values data for any recommender, ranker or classifier.

- Leave-one-slice-out (LOO): U(all) - U(all without slice). Cheap, but blind to redundancy:
  two slices that carry the same signal both look worthless.
- Truncated Monte-Carlo Shapley over slices (Ghorbani & Zou, "Data Shapley", ICML 2019):
  average a slice's marginal gain over random orders of the slices. A permutation is
  truncated once the utility of the prefix is within `truncation_tol` of the full-data
  utility (the remaining marginals are taken as 0 -- the budget goes where the signal is).
  Utilities are cached per subset of slices, so with a handful of slices the loop costs at
  most 2^n_slices trainings. Convergence: each slice's running standard error, and a
  Gelman-Rubin R-hat across `n_chains` interleaved chains of permutations; the loop stops
  when both are small, or when the time budget or permutation cap runs out (the result says
  which).
- Per-example values for large data: `data_value_knn.knn_shapley` (Jia et al., VLDB 2019).

`slice_events_by` builds slices from typed events by event type, source, channel, time
window or user segment.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import numpy as np

from shoploop.domain import BaseEvent

log = logging.getLogger(__name__)

Utility = Callable[[np.ndarray], float]
Recommendation = Literal["keep collecting", "neutral", "drop: harms the model"]


# ---------------------------------------------------------------------------- slicing


def _segment_by_activity(events: Sequence[BaseEvent]) -> dict[str, str]:
    """light / medium / heavy users by terciles of their event counts."""
    counts = Counter(e.user_id for e in events)
    if not counts:
        return {}
    values = np.array(sorted(counts.values()))
    lo, hi = np.quantile(values, [1 / 3, 2 / 3])
    return {u: ("light" if c <= lo else "medium" if c <= hi else "heavy") for u, c in counts.items()}


def slice_events_by(
    events: Sequence[BaseEvent],
    key: Literal["type", "source", "channel", "time_window", "segment"] | Callable[[BaseEvent], str],
    *,
    window: timedelta = timedelta(days=7),
    origin: datetime | None = None,
    segments: Mapping[str, str] | Callable[[str], str] | None = None,
) -> dict[str, np.ndarray]:
    """Slice name -> sorted int indices into `events`.

    type: the event type. source / channel: `event.context["source"|"channel"]` ("unknown"
    when absent). time_window: windows of `window` starting at `origin` (default: the first
    event), named by their start date. segment: `segments[user_id]` (mapping or callable);
    by default light / medium / heavy users by activity terciles.
    """
    if callable(key):
        label: Callable[[BaseEvent], str] = key
    elif key == "type":
        label = lambda e: str(getattr(e, "type", "unknown"))  # noqa: E731
    elif key in ("source", "channel"):
        label = lambda e: str(e.context.get(key, "unknown"))  # noqa: E731
    elif key == "time_window":
        if not events:
            return {}
        start = origin or min(e.timestamp for e in events)

        def label(e: BaseEvent) -> str:
            w = (e.timestamp - start) // window
            return (start + w * window).date().isoformat()

    elif key == "segment":
        seg = segments if segments is not None else _segment_by_activity(events)
        label = (
            (lambda e: str(seg(e.user_id)))
            if callable(seg)
            else (lambda e: str(seg.get(e.user_id, "unknown")))
        )
    else:
        raise ValueError(f"unknown slice key {key!r}")
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(events):
        groups.setdefault(label(e), []).append(i)
    return {name: np.asarray(idx, dtype=np.int64) for name, idx in sorted(groups.items())}


# ---------------------------------------------------------------------------- slice utility


class SliceUtility:
    """U(set of slices), cached by subset (each call trains and evaluates a model)."""

    def __init__(self, utility: Utility, slices: Mapping[str, np.ndarray]) -> None:
        if not slices:
            raise ValueError("need at least one slice")
        self.names = tuple(slices)
        self._idx = [np.asarray(slices[n], dtype=np.int64) for n in self.names]
        self._utility = utility
        self._cache: dict[frozenset[int], float] = {}
        self.n_calls = 0
        self.seconds = 0.0

    def __call__(self, members: frozenset[int]) -> float:
        got = self._cache.get(members)
        if got is None:
            parts = [self._idx[i] for i in sorted(members)]
            rows = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            t = time.perf_counter()
            got = float(self._utility(np.sort(rows)))
            self.seconds += time.perf_counter() - t
            self.n_calls += 1
            self._cache[members] = got
        return got

    @property
    def all(self) -> frozenset[int]:
        return frozenset(range(len(self.names)))


def leave_one_slice_out(
    utility: Utility | SliceUtility, slices: Mapping[str, np.ndarray]
) -> dict[str, float]:
    su = utility if isinstance(utility, SliceUtility) else SliceUtility(utility, slices)
    full = su(su.all)
    return {name: full - su(su.all - {i}) for i, name in enumerate(su.names)}


def exact_slice_shapley(
    utility: Utility | SliceUtility, slices: Mapping[str, np.ndarray]
) -> dict[str, float]:
    """Exact Shapley values by enumerating every subset (2^n trainings; n <= 14)."""
    su = utility if isinstance(utility, SliceUtility) else SliceUtility(utility, slices)
    n = len(su.names)
    if n > 14:
        raise ValueError("exact Shapley enumerates 2^n subsets; use tmc_shapley for more than 14 slices")
    values = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            w = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                values[i] += w * (su(s | {i}) - su(s))
    return dict(zip(su.names, map(float, values), strict=True))


@dataclass(frozen=True)
class ShapleyConfig:
    """Budget and stopping rule for truncated Monte-Carlo Shapley.

    Tolerances are relative to |U(all) - U(none)|, the total gain the data brings.
    """

    max_permutations: int = 1000
    min_permutations: int = 40
    n_chains: int = 4
    truncation_tol: float = 0.0  # 0 disables truncation; see tmc_shapley for the bias it trades
    target_stderr: float = 0.01
    rhat_threshold: float = 1.05
    time_budget_s: float = 120.0
    seed: int = 0
    log_every_s: float = 10.0


@dataclass(frozen=True)
class ShapleyResult:
    names: tuple[str, ...]
    values: np.ndarray  # (n_slices,)
    stderr: np.ndarray  # (n_slices,)
    r_hat: np.ndarray  # (n_slices,) Gelman-Rubin across chains (nan before 2 permutations per chain)
    n_permutations: int
    converged: bool
    stop_reason: str
    elapsed_s: float
    n_utility_calls: int
    full_utility: float
    empty_utility: float
    n_truncated: int
    stderr_history: list[tuple[int, float]] = field(default_factory=list)  # (permutations, max rel. stderr)


def gelman_rubin(chains: list[np.ndarray]) -> np.ndarray:
    """R-hat per column from a list of (n_i, d) chains (truncated to the shortest)."""
    m = min(len(c) for c in chains)
    if m < 2 or len(chains) < 2:
        return np.full(chains[0].shape[1] if chains and chains[0].ndim == 2 else 0, np.nan)
    x = np.stack([c[:m] for c in chains])  # (n_chains, m, d)
    w = x.var(axis=1, ddof=1).mean(axis=0)
    b = m * x.mean(axis=1).var(axis=0, ddof=1)
    var_hat = (m - 1) / m * w + b / m
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(var_hat / w)
    return np.where(w > 0, r, 1.0)  # a slice with zero marginal variance has converged trivially


def tmc_shapley(
    utility: Utility | SliceUtility, slices: Mapping[str, np.ndarray], config: ShapleyConfig = ShapleyConfig()
) -> ShapleyResult:
    """Truncated Monte-Carlo Shapley values of slices.

    Truncation (when `truncation_tol` > 0) sets a permutation's remaining marginals to zero
    once the prefix is within tolerance of U(all). It saves trainings when many slices are
    redundant, but it is biased towards zero for a harmful slice that arrives after
    truncation, so it is off by default when slices are few (the subset cache already bounds
    the cost at 2^n_slices).
    """
    su = utility if isinstance(utility, SliceUtility) else SliceUtility(utility, slices)
    n = len(su.names)
    rng = np.random.default_rng(config.seed)
    t0 = time.perf_counter()
    full, empty = su(su.all), su(frozenset())
    scale = max(abs(full - empty), 1e-12)
    chains: list[list[np.ndarray]] = [[] for _ in range(config.n_chains)]
    total = np.zeros(n)
    total_sq = np.zeros(n)
    n_perm = n_trunc = 0
    history: list[tuple[int, float]] = []
    stop_reason = "max_permutations"
    converged = False
    last_log = t0
    r_hat = np.full(n, np.nan)
    stderr = np.full(n, np.inf)
    while n_perm < config.max_permutations:
        order = rng.permutation(n)
        marg = np.zeros(n)
        members: frozenset[int] = frozenset()
        prev = empty
        for i in order:
            if config.truncation_tol > 0 and abs(full - prev) < config.truncation_tol * scale:
                n_trunc += 1
                break  # remaining marginals stay 0
            members = members | {int(i)}
            cur = su(members)
            marg[i] = cur - prev
            prev = cur
        chains[n_perm % config.n_chains].append(marg)
        total += marg
        total_sq += marg * marg
        n_perm += 1
        if n_perm >= 2:
            mean = total / n_perm
            var = np.maximum(total_sq / n_perm - mean * mean, 0.0) * n_perm / (n_perm - 1)
            stderr = np.sqrt(var / n_perm)
            max_rel = float(stderr.max() / scale)
            if n_perm % max(1, config.n_chains) == 0:
                history.append((n_perm, max_rel))
            if n_perm >= config.min_permutations and n_perm % config.n_chains == 0:
                r_hat = gelman_rubin([np.array(c) for c in chains])
                if max_rel <= config.target_stderr and np.nanmax(r_hat) <= config.rhat_threshold:
                    stop_reason, converged = "converged", True
                    break
        now = time.perf_counter()
        if now - t0 > config.time_budget_s:
            stop_reason = "time_budget"
            break
        if now - last_log > config.log_every_s:
            rate = n_perm / (now - t0)
            log.info("tmc_shapley: %d permutations (%.1f/s), %d trainings, max rel. stderr %.4f",
                     n_perm, rate, su.n_calls, float(stderr.max() / scale))  # fmt: skip
            last_log = now
    if len(chains[0]) >= 2:
        r_hat = gelman_rubin([np.array(c) for c in chains if c])
    return ShapleyResult(
        names=su.names,
        values=total / max(n_perm, 1),
        stderr=stderr,
        r_hat=r_hat,
        n_permutations=n_perm,
        converged=converged,
        stop_reason=stop_reason,
        elapsed_s=time.perf_counter() - t0,
        n_utility_calls=su.n_calls,
        full_utility=full,
        empty_utility=empty,
        n_truncated=n_trunc,
        stderr_history=history,
    )


# ---------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class SliceValue:
    name: str
    n_events: int
    value: float  # Shapley value: share of U(all) - U(none) this slice earns
    stderr: float
    loo: float  # U(all) - U(all without this slice)
    value_per_1k: float  # value per 1,000 events of the slice
    recommendation: Recommendation


@dataclass(frozen=True)
class DataValueReport:
    metric: str
    full_utility: float
    empty_utility: float
    slices: tuple[SliceValue, ...]
    shapley: ShapleyResult

    def to_dict(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "full_utility": self.full_utility,
            "empty_utility": self.empty_utility,
            "slices": [s.__dict__ for s in self.slices],
            "n_permutations": self.shapley.n_permutations,
            "converged": self.shapley.converged,
            "stop_reason": self.shapley.stop_reason,
            "n_utility_calls": self.shapley.n_utility_calls,
            "elapsed_s": self.shapley.elapsed_s,
        }


def recommend(
    value: float, stderr: float, total_gain: float, *, z: float = 2.0, keep_share: float = 0.01
) -> Recommendation:
    """drop when the value is credibly negative; keep collecting when credibly positive and at
    least `keep_share` of the total gain; neutral otherwise (no measurable effect)."""
    if value + z * stderr < 0:
        return "drop: harms the model"
    if value - z * stderr > 0 and value >= keep_share * abs(total_gain):
        return "keep collecting"
    return "neutral"


def value_slices(
    utility: Utility | SliceUtility,
    slices: Mapping[str, np.ndarray],
    config: ShapleyConfig = ShapleyConfig(),
    *,
    metric: str = "utility",
) -> DataValueReport:
    """Shapley + LOO per slice, value per 1,000 events and a recommendation, best first."""
    su = utility if isinstance(utility, SliceUtility) else SliceUtility(utility, slices)
    sh = tmc_shapley(su, slices, config)
    loo = leave_one_slice_out(su, slices)
    gain = sh.full_utility - sh.empty_utility
    rows = []
    for i, name in enumerate(sh.names):
        n_ev = len(slices[name])
        v, se = float(sh.values[i]), float(sh.stderr[i])
        rows.append(
            SliceValue(
                name, n_ev, v, se, loo[name], 1000.0 * v / n_ev if n_ev else 0.0, recommend(v, se, gain)
            )
        )
    rows.sort(key=lambda s: -s.value)
    return DataValueReport(metric, sh.full_utility, sh.empty_utility, tuple(rows), sh)
