"""Containers the dataset adapters return.

`DatasetBundle` is shop-shaped (catalog + typed events, ready for ingestion);
`SequenceSplit` and `BanditLog` are benchmark-shaped (dense ints and arrays, ready for
models and estimators), so a benchmark never has to round-trip through the stores.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from shoploop.domain import Event, Product


@dataclass
class DatasetBundle:
    """A catalog plus the behaviour logged on it, as validated domain records."""

    products: list[Product]
    events: list[Event]
    name: str
    # Free-form facts about how the bundle was built (synthetic timestamps, dropped rows...).
    notes: dict[str, object] = field(default_factory=dict)

    def event_counts(self) -> dict[str, int]:
        """Number of events per type, e.g. {"impression": 120, "click": 9}."""
        return dict(Counter(event.type for event in self.events))

    def summary(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(self.event_counts().items()))
        return f"{self.name}: {len(self.products)} products, {len(self.events)} events ({counts or 'none'})"


@dataclass
class SequenceSplit:
    """A leave-one-out sequential-recommendation split over dense item ids.

    Item ids run 1..n_items; 0 is padding (matches `shoploop.domain.IdMap`). Each
    user contributes one training history and (usually) one test case; only some
    benchmarks hold out a validation case for every user.
    """

    n_items: int
    train: list[list[int]]  # per user: the history to fit on
    valid_history: list[list[int]]
    valid_target: list[int]
    test_history: list[list[int]]
    test_target: list[int]
    item_text: dict[int, str] | None = None  # dense id -> text, when the dataset ships text
    # Dense id -> the dataset's own item id (ASIN, MovieLens id...), when known.
    item_ids: dict[int, str] | None = None
    # Indices of the test cases whose history is the user's complete history before the
    # target, when the split cannot give that for every case (gSASRec's ml-1m ships no test
    # input, so most test histories lack the second-to-last item). None = all are complete.
    test_exact: list[int] | None = None

    @property
    def n_users(self) -> int:
        return len(self.train)

    def n_interactions(self) -> int:
        """Training interactions plus the held-out test targets."""
        return sum(len(seq) for seq in self.train) + len(self.test_target)

    def validate(self) -> None:
        """Raise ValueError when ids fall outside 1..n_items or lists disagree in length."""
        if len(self.valid_history) != len(self.valid_target):
            raise ValueError("valid_history and valid_target differ in length")
        if len(self.test_history) != len(self.test_target):
            raise ValueError("test_history and test_target differ in length")
        for name, seqs in (
            ("train", self.train),
            ("valid_history", self.valid_history),
            ("test_history", self.test_history),
            ("valid_target", [self.valid_target]),
            ("test_target", [self.test_target]),
        ):
            for seq in seqs:
                if seq and (min(seq) < 1 or max(seq) > self.n_items):
                    raise ValueError(f"{name}: item ids must lie in 1..{self.n_items}")
        if self.test_exact is not None and any(not 0 <= i < len(self.test_target) for i in self.test_exact):
            raise ValueError(f"test_exact: indices must lie in 0..{len(self.test_target) - 1}")


@dataclass
class BanditLog:
    """Logged bandit feedback in the shape off-policy estimators want (cf. Open Bandit Pipeline).

    Shapes: n rounds, d context features, n_actions actions with d_a features each.
    """

    action: np.ndarray  # (n,) int, 0..n_actions-1
    position: np.ndarray  # (n,) int, 0-based slot (the file stores 1-based)
    reward: np.ndarray  # (n,) float (click = 1.0)
    pscore: np.ndarray  # (n,) float, logging policy's probability of (action, position)
    context: np.ndarray  # (n, d) float
    action_context: np.ndarray  # (n_actions, d_a) float
    n_actions: int
    len_list: int
    timestamp: np.ndarray  # (n,) datetime64[us], UTC
    policy: str = ""
    campaign: str = ""
    context_names: list[str] = field(default_factory=list)  # column name of each context feature

    @property
    def n_rounds(self) -> int:
        return int(self.action.shape[0])

    def ctr(self) -> float:
        """The logging policy's own (on-policy) click rate."""
        return float(self.reward.mean()) if self.n_rounds else 0.0
