"""Turning shopper events into what recommenders eat: per-user sequences and sparse matrices.

Events arrive with string ids; models want dense ints 1..n (0 = padding). `IdMap` does the
mapping; items not in the catalog map are dropped (or added, when `grow_items=True`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from shoploop.domain.idmap import IdMap

# Which event types count as positive signal for "what comes next", and how strongly.
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "view": 1.0,
    "click": 1.0,
    "add_to_cart": 2.0,
    "purchase": 3.0,
    "rating": 1.0,
}


@dataclass
class UserSequences:
    """Per-user item sequences in time order, with parallel timestamps (unix seconds)."""

    users: IdMap
    items: IdMap
    sequences: list[list[int]] = field(default_factory=list)  # row u-1 = user index u
    timestamps: list[list[float]] = field(default_factory=list)
    event_types: list[list[str]] = field(default_factory=list)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def history(self, user_id: str) -> list[int]:
        """The user's sequence, or [] for an unknown user (recommenders fall back)."""
        u = self.users.get(user_id)
        return list(self.sequences[u - 1]) if u else []


def build_sequences(
    events: Iterable[object],
    items: IdMap,
    *,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    grow_items: bool = False,
    dedupe_consecutive: bool = True,
) -> UserSequences:
    """Group item events by user, sorted by timestamp (stable for equal times).

    `events` are `shoploop.domain.events` records (anything with `type`, `user_id`,
    `timestamp` and `item_id` or purchase `items`); event types not in `weights` (search,
    impression, dislike...) are ignored. A view followed by a cart of the same item is one step, not two
    (`dedupe_consecutive`), so sequences model moving between items, not funnels.
    """
    per_user: dict[str, list[tuple[float, int, str, int]]] = defaultdict(list)
    for order, ev in enumerate(events):
        kind = getattr(ev, "type", None)
        if kind not in weights:
            continue
        ts = ev.timestamp.timestamp()  # type: ignore[attr-defined]
        for item_id in _item_ids(ev):
            idx = items.add(item_id) if grow_items else items.get(item_id)
            if idx:
                per_user[str(ev.user_id)].append((ts, order, kind, idx))  # type: ignore[attr-defined]
    users = IdMap()
    out = UserSequences(users=users, items=items)
    for user_id in sorted(per_user):
        rows = sorted(per_user[user_id])
        seq, ts_list, kinds = [], [], []
        for ts, _, kind, idx in rows:
            if dedupe_consecutive and seq and seq[-1] == idx:
                kinds[-1] = kind if weights[kind] > weights[kinds[-1]] else kinds[-1]
                continue
            seq.append(idx)
            ts_list.append(ts)
            kinds.append(kind)
        users.add(user_id)
        out.sequences.append(seq)
        out.timestamps.append(ts_list)
        out.event_types.append(kinds)
    return out


def _item_ids(ev: object) -> list[str]:
    """Item ids an event is about: one for views/clicks/carts, every line of a purchase."""
    item_id = getattr(ev, "item_id", None)
    if item_id is not None:
        return [str(item_id)]
    return [str(line.item_id) for line in getattr(ev, "items", ()) if getattr(line, "item_id", None)]


def interaction_matrix(
    sequences: list[list[int]], n_items: int, *, values: list[list[float]] | None = None
) -> sp.csr_matrix:
    """(n_users, n_items+1) CSR; repeated (user, item) pairs sum. Column 0 stays empty."""
    rows = np.fromiter((u for u, s in enumerate(sequences) for _ in s), dtype=np.int64)
    cols = np.fromiter((i for s in sequences for i in s), dtype=np.int64)
    data = (
        np.ones(len(cols))
        if values is None
        else np.fromiter((v for vs in values for v in vs), dtype=np.float64, count=len(cols))
    )
    ok = (cols > 0) & (cols <= n_items)
    return sp.csr_matrix((data[ok], (rows[ok], cols[ok])), shape=(len(sequences), n_items + 1))


def purchase_baskets(us: UserSequences, *, session_gap_seconds: float = 3600.0) -> list[list[int]]:
    """Purchased items grouped into baskets: purchases by one user less than the gap apart."""
    baskets: list[list[int]] = []
    for seq, ts, kinds in zip(us.sequences, us.timestamps, us.event_types, strict=True):
        current: list[int] = []
        last = None
        for item, t, kind in zip(seq, ts, kinds, strict=True):
            if kind != "purchase":
                continue
            if last is not None and t - last > session_gap_seconds and current:
                baskets.append(current)
                current = []
            current.append(item)
            last = t
        if current:
            baskets.append(current)
    return baskets
