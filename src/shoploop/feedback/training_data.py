"""From the event log to learning-to-rank data: impressions joined with what shoppers did.

Every served list is an `ImpressionEvent`; clicks, carts and purchases carry its
`request_id`. `join_logs` turns that into one `LoggedList` per impression with graded
labels (0 none < 1 click < 2 cart < 3 purchase, the strongest signal wins). Lists the shopper
sorted themselves (by price) are left out: their order says what the shopper asked for, not
what the ranker chose, so they would teach the ranker (and its gate's estimate) the wrong thing.

`featurize` rebuilds each list's features **as they were when the list was served**: it
replays the log through a fresh `OnlineState` and computes a list's features just before
applying its own impression, so a click never leaks into the counters that were supposed
to predict it.

`training_set` stacks lists into LightGBM's (X, y, group, weight). With an examination
curve, a clicked item shown at position k gets weight 1 / theta_k (inverse propensity
weighting, Joachims et al., WSDM 2017): a click at a slot few shoppers look at is
stronger evidence than one at the top. The weight is clipped at `max_weight` because
1/theta explodes for deep slots, and a handful of deep clicks (often noise) would
otherwise dominate the gradient; clipping trades a small, known bias (deep clicks count
a little less than they should) for bounded variance (Strehl et al., 2010).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shoploop.domain import (
    AddToCartEvent,
    BaseEvent,
    ClickEvent,
    ImpressionEvent,
    Product,
    PurchaseEvent,
)
from shoploop.feedback.click_models import ExaminationCurve
from shoploop.feedback.features import FeatureAssembler, FeatureContext
from shoploop.feedback.online import OnlineConfig, OnlineState

log = logging.getLogger("shoploop.feedback.training_data")

GRADE = {"click": 1, "add_to_cart": 2, "purchase": 3}
# The impression context keys under which a list's per-item base scores are logged (see
# `LoggedList.base_scores`) and the explanation key they were taken from, which is also where
# the feature assembler reads them: a category page's featured score or the home feed model's.
BASE_SCORES_KEY = "base_scores"
BASE_FIELD_KEY = "base_field"
FEATURED_FIELD = "featured_score"
MODEL_FIELD = "model_score"
_BASE_FIELDS = (FEATURED_FIELD, MODEL_FIELD)
# What `join_logs` reads: the served lists and the graded responses to them.
LIST_EVENT_TYPES = ("impression", *GRADE)


@dataclass
class LoggedList:
    """One served list and the graded response to it."""

    request_id: str
    surface: str
    query: str | None
    user_id: str
    timestamp: float
    items: tuple[str, ...]
    positions: np.ndarray  # (n,) 1-based
    propensities: np.ndarray  # (n,) logged P(item in its slot); 1.0 for deterministic lists
    labels: np.ndarray  # (n,) int grades
    # When the exploration policy drew this list's order at random: per re-ordered slot (from
    # the top), the shown item's rank in the ranker's order and P(that slot | exploring), and
    # how many top ranks could reach every slot (see `click_models.examination_from_randomisation`).
    explored_ranks: np.ndarray | None = None
    explored_probabilities: np.ndarray | None = None
    full_support_ranks: int = 0
    # Per shown item, the score the learned ranker takes as its input feature, as it was when
    # the list was served (a category page's featured score, the home feed model's score;
    # logged because it cannot be recomputed later), and its explanation key. None for lists
    # whose inputs are rebuilt from the searcher instead.
    base_scores: np.ndarray | None = None
    base_field: str = FEATURED_FIELD

    @property
    def explored(self) -> bool:
        return self.explored_ranks is not None

    @property
    def clicked(self) -> bool:
        return bool(self.labels.any())


def join_logs(
    events: Iterable[BaseEvent], *, surfaces: Sequence[str] | None = ("search",)
) -> list[LoggedList]:
    """Impressions (on `surfaces`, None = all) with labels from interactions sharing their request_id."""
    lists: dict[str, LoggedList] = {}
    slot: dict[str, dict[str, int]] = {}
    pending: list[tuple[str, str, int]] = []
    for ev in events:
        if isinstance(ev, ImpressionEvent):
            if surfaces is not None and ev.surface not in surfaces:
                continue
            if ev.context.get("sort"):  # the shopper chose the order (by price): not the ranker's
                continue
            items = tuple(s.item_id for s in ev.items)
            field = _base_field(ev.context.get(BASE_FIELD_KEY))
            lists[ev.request_id] = LoggedList(
                request_id=ev.request_id,
                surface=ev.surface,
                query=ev.query,
                user_id=ev.user_id,
                timestamp=ev.timestamp.timestamp(),
                items=items,
                positions=np.array([s.position for s in ev.items], dtype=np.int64),
                propensities=np.array([s.propensity or 1.0 for s in ev.items], dtype=float),
                labels=np.zeros(len(items), dtype=np.int64),
                base_scores=_base_scores(ev.context.get(BASE_SCORES_KEY), len(items)) if field else None,
                base_field=field or FEATURED_FIELD,
                **_exploration_fields(ev.context.get("explored")),
            )
            slot[ev.request_id] = {item: i for i, item in enumerate(items)}
        elif isinstance(ev, ClickEvent | AddToCartEvent) and ev.request_id:
            pending.append((ev.request_id, ev.item_id, GRADE[ev.type]))
        elif isinstance(ev, PurchaseEvent) and ev.request_id:
            pending.extend((ev.request_id, line.item_id, GRADE["purchase"]) for line in ev.items)
    for request_id, item_id, grade in pending:
        where = slot.get(request_id, {}).get(item_id)
        if where is not None:
            labels = lists[request_id].labels
            labels[where] = max(labels[where], grade)
    return sorted(lists.values(), key=lambda x: x.timestamp)


def _base_field(logged: Any) -> str | None:
    """The explanation key an impression's base scores came from; category pages logged before
    the key existed carried featured scores. None: a key this version cannot interpret."""
    if logged is None:
        return FEATURED_FIELD
    return logged if isinstance(logged, str) and logged in _BASE_FIELDS else None


def _base_scores(logged: Any, n: int) -> np.ndarray | None:
    """An impression's logged base scores, NaN for an item without one (a pinned product);
    None when absent, malformed or of the wrong length."""
    if not isinstance(logged, list) or len(logged) != n:
        return None
    try:
        return np.array([np.nan if v is None else float(v) for v in logged], dtype=float)
    except (TypeError, ValueError):
        return None


def _exploration_fields(logged: Any) -> dict[str, Any]:
    """LoggedList fields from an impression's `context["explored"]` (absent or malformed: none)."""
    if not isinstance(logged, dict):
        return {}
    try:
        ranks = np.asarray(logged["ranks"], dtype=np.int64)
        probs = np.asarray(logged["probabilities"], dtype=float)
        support = int(logged["full_support_ranks"])
    except (KeyError, TypeError, ValueError):
        return {}
    if ranks.shape != probs.shape or ranks.ndim != 1 or not ((probs > 0) & (probs <= 1)).all():
        return {}
    return {"explored_ranks": ranks, "explored_probabilities": probs, "full_support_ranks": support}


def click_rows(lists: Sequence[LoggedList]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pair id, 1-based position, click 0/1) rows for click models; pair = (query, item)."""
    ids: dict[tuple[str, str], int] = {}
    pair, pos, click = [], [], []
    for lst in lists:
        q = (lst.query or "").strip().lower()
        for item, p, label in zip(lst.items, lst.positions, lst.labels, strict=True):
            pair.append(ids.setdefault((q, item), len(ids)))
            pos.append(int(p))
            click.append(1.0 if label > 0 else 0.0)
    return np.array(pair, dtype=np.int64), np.array(pos, dtype=np.int64), np.array(click)


@dataclass
class FeaturizedList:
    logged: LoggedList
    X: np.ndarray  # (n, d) features as of serving time


def featurize(
    events: Sequence[BaseEvent],
    lists: Sequence[LoggedList],
    *,
    products: Callable[[str], Product | None],
    explain: Callable[[str, Sequence[str]], list[dict[str, Any]]] | None,
    online_config: OnlineConfig = OnlineConfig(),
    progress: Callable[[str], None] | None = None,
    item_vector: Callable[[str], np.ndarray | None] | None = None,
) -> list[FeaturizedList]:
    """Point-in-time features for `lists` (a subset of `join_logs(events)`), see module docstring.

    explain(query, item_ids) -> per-item explanation dicts with retrieval scores (for
    search lists; e.g. `features.retrieval_explanations` bound to the searcher). It is
    called once per distinct query with every item ever shown for it.
    item_vector(item_id) -> the item's text vector, for "similar to recently viewed" (the
    engine's `item_vector`); None leaves that feature 0.
    """
    started = time.perf_counter()
    wanted = {lst.request_id: lst for lst in lists}
    expl: dict[tuple[str, str], Mapping[str, Any]] = {}
    if explain is not None:
        per_query: dict[str, set[str]] = {}
        for lst in lists:
            if lst.query:
                per_query.setdefault(lst.query, set()).update(lst.items)
        for q, items in per_query.items():
            ordered = sorted(items)
            for item, e in zip(ordered, explain(q, ordered), strict=True):
                expl[(q, item)] = e
    state = OnlineState(online_config, lookup=products)
    assembler = FeatureAssembler()
    out: list[FeaturizedList] = []
    empty: Mapping[str, Any] = {}
    for ev in events:
        if isinstance(ev, ImpressionEvent) and ev.request_id in wanted:
            lst = wanted[ev.request_id]
            ctx = FeatureContext(
                online=state,
                products=products,
                query=lst.query,
                profile=state.profile(lst.user_id),
                surface=lst.surface,
                item_vector=item_vector,
            )
            q = lst.query or ""
            if lst.base_scores is not None:
                field = lst.base_field
                given = [{field: float(v)} if np.isfinite(v) else empty for v in lst.base_scores]
            else:
                given = [expl.get((q, i), empty) for i in lst.items]
            X = assembler.transform(lst.items, given, ctx)
            out.append(FeaturizedList(lst, X))
        state.update(ev)
    if progress:
        progress(f"featurized {len(out)} lists in {time.perf_counter() - started:.1f}s")
    return out


@dataclass
class TrainingSet:
    X: np.ndarray  # (n, d)
    y: np.ndarray  # (n,) int grades
    group: np.ndarray  # (n_lists,) list sizes
    weight: np.ndarray  # (n,) clipped inverse examination propensity (1.0 when not corrected)
    positions: np.ndarray  # (n,) 1-based logged positions

    @property
    def n_lists(self) -> int:
        return len(self.group)


@dataclass(frozen=True)
class WeightingConfig:
    max_weight: float = 10.0  # clip on 1 / theta, see the module docstring
    only_clicked_lists: bool = True  # lambdarank gets no gradient from lists without a positive


def ipw_weights(
    labels: np.ndarray, positions: np.ndarray, curve: ExaminationCurve | None, max_weight: float
) -> np.ndarray:
    """(n,) weights: 1 / theta(position) for positive labels (clipped to [1, max_weight]), else 1."""
    w = np.ones(len(labels))
    if curve is None:
        return w
    inv = 1.0 / curve.at(positions)
    pos = labels > 0
    w[pos] = np.clip(inv[pos], 1.0, max_weight)
    return w


def training_set(
    lists: Sequence[FeaturizedList],
    curve: ExaminationCurve | None,
    config: WeightingConfig = WeightingConfig(),
    *,
    n_features: int | None = None,
) -> TrainingSet:
    """Stack featurized lists; `curve=None` is naive click training (all weights 1)."""
    keep = [f for f in lists if f.logged.clicked or not config.only_clicked_lists]
    d = n_features if n_features is not None else len(FeatureAssembler.names)
    if not keep:
        empty = np.zeros(0)
        return TrainingSet(
            np.zeros((0, d), np.float32), empty.astype(np.int64), empty.astype(np.int64), empty, empty
        )
    X = np.concatenate([f.X for f in keep])
    y = np.concatenate([f.logged.labels for f in keep])
    pos = np.concatenate([f.logged.positions for f in keep])
    w = ipw_weights(y, pos, curve, config.max_weight)
    group = np.array([len(f.logged.items) for f in keep], dtype=np.int64)
    return TrainingSet(X, y, group, w, pos)
