"""Safe exploration that logs exact propensities.

Learning from clicks needs lists that are not always in the same order (otherwise the
model never learns what it did not show), and off-policy evaluation needs to know how
likely each item was to land in each slot. This policy:

* explores on a `budget` share of requests only; the rest get the ranker's order. With
  `budget_half_servings` set, a query's budget shrinks as it is served more often,
  `budget * h / (h + n)` after n (time-decayed) servings, never below `min_budget`: new and
  rare queries, where the ranker knows least, are explored most, and a head query that has
  been learned stops paying for it (count-based decay, as epsilon_n ~ 1/n schedules do in
  bandits). The budget used is fixed before the draw, so the logged propensities stay exact;
* when exploring, re-orders just the top `window` items by Plackett-Luce sampling on
  the ranker's scores with a `temperature` (higher = more random);
* never promotes an item more than `max_promotion` positions above its deterministic
  rank (a low-scored item cannot jump to the top);
* optionally spends a `probe_share` of the exploring requests on a *probe* instead of a
  shuffle: the item the ranker placed at `probe_rank` (0-based; by default the first one
  past a page of 10) is shown at `probe_slot` and the items in between move down one. A
  learned ranker only shows what it already believes in, and with examination falling
  like 1/slot an item below the page is never judged; a probe near the top gets it
  judged in a few showings, and its cost on the list is known and bounded (one item, one
  slot). Which item is probed is fixed by the ranker's order, so the propensity is exact;
* logs for every shown item its **marginal** probability of being in that slot under
  the whole policy (explore or not), computed exactly by enumerating the allowed
  permutations — a window of 6 has at most 720 — rather than estimated.

The marginals of one slot sum to 1 over items, and the marginals of one item sum to 1
over slots (both checked in tests), which is what position-based IPS estimators need.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class ExplorationConfig:
    budget: float = 0.1  # share of requests that explore
    window: int = 6  # only the top `window` slots are re-ordered
    temperature: float = 1.0  # applied to standardised scores
    max_promotion: int = 3  # positions an item may rise above its deterministic rank
    # 0 = the same budget for every request; h > 0 = a query served n times explores with
    # budget * h / (h + n), floored at min_budget (lists without a query keep `budget`).
    budget_half_servings: float = 0.0
    min_budget: float = 0.0
    # Share of exploring requests that probe the item at 0-based `probe_rank` by showing it at
    # 1-based `probe_slot` (0 = never probe: every exploring request shuffles).
    probe_share: float = 0.0
    probe_slot: int = 2
    probe_rank: int = 10

    def __post_init__(self) -> None:
        if not 0.0 <= self.budget <= 1.0:
            raise ValueError("budget must be in [0, 1]")
        if not 1 <= self.window <= 8:
            raise ValueError("window must be in 1..8 (exact enumeration)")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")
        if self.max_promotion < 0:
            raise ValueError("max_promotion must be >= 0")
        if self.budget_half_servings < 0:
            raise ValueError("budget_half_servings must be >= 0")
        if not 0.0 <= self.min_budget <= self.budget:
            raise ValueError("min_budget must be in [0, budget]")
        if not 0.0 <= self.probe_share <= 1.0:
            raise ValueError("probe_share must be in [0, 1]")
        if self.probe_slot < 1:
            raise ValueError("probe_slot must be >= 1")
        if self.probe_rank < self.probe_slot:
            raise ValueError("probe_rank must be >= probe_slot (a probe moves an item up)")

    def budget_for(self, servings: float | None) -> float:
        """Exploration budget for a list whose query was served `servings` times before
        (None: no query, or decay off: the flat `budget`)."""
        h = self.budget_half_servings
        if servings is None or h == 0.0:
            return self.budget
        return max(self.min_budget, self.budget / (1.0 + max(servings, 0.0) / h))


@dataclass(frozen=True)
class ExplorationResult:
    order: np.ndarray  # (n,) indices into the input, the list to show
    propensities: np.ndarray  # (n,) marginal P(shown item in its slot) under the policy
    explored: bool
    policy: str
    # When explored, per re-ordered slot: P(that item lands in that slot | exploring). With
    # `order` (the item's rank in the ranker's order) this is what an unbiased estimate of
    # the examination curve needs (`feedback.click_models.examination_from_randomisation`).
    slot_probabilities: np.ndarray | None = None
    # When the exploring request probed: (the probed item's rank in the ranker's order, 0-based
    # slot it was shown at).
    probe: tuple[int, int] | None = None


@lru_cache(maxsize=64)
def allowed_permutations(n: int, max_promotion: int) -> np.ndarray:
    """(m, n) permutations p of range(n) where p[slot] = item and item - slot <= max_promotion."""
    perms = [
        p
        for p in itertools.permutations(range(n))
        if all(item - slot <= max_promotion for slot, item in enumerate(p))
    ]
    return np.asarray(perms, dtype=np.int64).reshape(len(perms), n)


def plackett_luce_probabilities(weights: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """(m,) probability of each permutation under Plackett-Luce with `weights` (n,) > 0,
    renormalised over the allowed set `perms` (m, n)."""
    w = weights[perms]  # (m, n): weight of the item in each slot
    # remaining mass before each slot = sum of weights of items not yet placed
    remaining = np.cumsum(w[:, ::-1], axis=1)[:, ::-1]  # (m, n)
    probs = np.prod(w / remaining, axis=1)
    return probs / probs.sum()


def slot_marginals(perms: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(n, n) matrix M[item, slot] = P(item in slot) for a distribution over permutations."""
    n = perms.shape[1]
    marginals = np.zeros((n, n))
    for slot in range(n):
        np.add.at(marginals[:, slot], perms[:, slot], probs)
    return marginals


class ExplorationPolicy:
    """Stateless apart from its config; randomness comes from the caller's generator."""

    def __init__(self, config: ExplorationConfig = ExplorationConfig()) -> None:
        self.config = config

    @property
    def name(self) -> str:
        c = self.config
        decay = f",h={c.budget_half_servings},min={c.min_budget}" if c.budget_half_servings else ""
        probe = f",probe={c.probe_share}@{c.probe_rank}->{c.probe_slot}" if c.probe_share else ""
        return f"pl-explore(b={c.budget}{decay},w={c.window},t={c.temperature},p={c.max_promotion}{probe})"

    @property
    def reach(self) -> int:
        """How many of the ranker's top items exploration may move (pins there turn it off)."""
        c = self.config
        return max(c.window, c.probe_rank + 1) if c.probe_share else c.window

    def _probe_order(self, total: int) -> np.ndarray | None:
        """The probe's order of ranks 0..probe_rank, or None when probing is off or too few items."""
        c = self.config
        r, s = c.probe_rank, c.probe_slot - 1
        if c.probe_share == 0.0 or total <= r:
            return None
        return np.concatenate([np.arange(s), [r], np.arange(s, r)]).astype(np.int64)

    def distribution(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Allowed permutations of the top window and their probabilities when exploring.

        `scores` are in deterministic order (best first)."""
        n = min(self.config.window, len(scores))
        perms = allowed_permutations(n, self.config.max_promotion)
        top = np.asarray(scores[:n], dtype=float)
        spread = top.std() or 1.0  # standardise so temperature means the same for any scorer
        logits = (top - top.max()) / (spread * self.config.temperature)
        return perms, plackett_luce_probabilities(np.exp(logits), perms)

    def choose(
        self, scores: np.ndarray, rng: np.random.Generator, *, budget: float | None = None
    ) -> ExplorationResult:
        """Pick the list to show for ranker `scores` (deterministic order, best first).

        `budget`: this request's exploration share (default the config's; see `budget_for`)."""
        budget = self.config.budget if budget is None else float(budget)
        if not 0.0 <= budget <= 1.0:
            raise ValueError("budget must be in [0, 1]")
        total = len(scores)
        n = min(self.config.window, total)
        probe_order = self._probe_order(total)
        if total == 0 or budget == 0.0 or (n < 2 and probe_order is None):
            return ExplorationResult(np.arange(total), np.ones(total), False, "deterministic")
        perms, probs, shuffle, mixture = self._policy(scores, budget, probe_order)
        m = len(mixture)
        explored = bool(rng.random() < budget)
        # The probe coin is drawn only when probing is on, so runs without it replay as before.
        probing = explored and probe_order is not None and bool(rng.random() < self.config.probe_share)
        slot_p = None
        probe_info = None
        if probing and probe_order is not None:
            head = np.concatenate([probe_order, np.arange(len(probe_order), m)])
            probe_info = (self.config.probe_rank, self.config.probe_slot - 1)
        elif explored:
            head = np.concatenate([perms[rng.choice(len(perms), p=probs)], np.arange(n, m)])
            # P(slot | shuffling): what the curve estimate conditions on (the probe coin is
            # independent of the shuffle, so conditioning on "shuffled" keeps it exact).
            slot_p = shuffle[head[:n], np.arange(n)]
        else:
            head = np.arange(m)
        order = np.concatenate([head, np.arange(m, total)])
        propensities = np.ones(total)
        propensities[:m] = mixture[head, np.arange(m)]
        return ExplorationResult(order, propensities, explored, self.name, slot_p, probe_info)

    def marginals(self, scores: np.ndarray, budget: float | None = None) -> np.ndarray:
        """(m, m) P(rank i lands in slot s) under the whole policy for the first m ranks (the ones
        exploration can move); the propensities `choose` logs are entries of this matrix."""
        budget = self.config.budget if budget is None else float(budget)
        return self._policy(scores, budget, self._probe_order(len(scores)))[3]

    def _policy(
        self, scores: np.ndarray, budget: float, probe_order: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(shuffle perms, their probabilities, shuffle marginals, policy marginals) over the
        first m ranks: the shuffle window, or up to the probed rank when probing."""
        n = min(self.config.window, len(scores))
        m = n if probe_order is None else max(n, len(probe_order))
        perms, probs = self.distribution(scores)
        shuffle = np.eye(m)
        shuffle[:n, :n] = slot_marginals(perms, probs)
        exploring = shuffle
        if probe_order is not None:
            q = self.config.probe_share
            probe = np.eye(m)
            probe[: len(probe_order)] = 0.0
            probe[probe_order, np.arange(len(probe_order))] = 1.0
            exploring = (1 - q) * shuffle + q * probe
        # Under the mixture, P(item i in slot s) = (1 - b) * [i == s] + b * M[i, s].
        mixture = budget * exploring + (1 - budget) * np.eye(m)
        return perms, probs, shuffle, mixture

    @property
    def full_support_ranks(self) -> int:
        """Ranks 0..this-1 of the ranker's order can land in every re-ordered slot when exploring
        (demotion is free, promotion is bounded): the common support an IPS curve estimate uses."""
        return min(self.config.max_promotion + 1, self.config.window)
