"""Training the default models from a shop's stores, and packaging them for the registry.

Two artifacts per shop:
* `search` — a saved `HybridSearcher` (BM25, dense vectors, typo vocabulary, intent model)
  plus the catalog version it was built at, so start-up replays only later changes;
* `recommender` — the next-item model, the co-view and bought-together neighbourhoods and
  the item index they share.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shoploop.domain import IdMap, Product
from shoploop.domain.events import (
    AddToCartEvent,
    BaseEvent,
    ClickEvent,
    ImpressionEvent,
    PurchaseEvent,
    SearchEvent,
    ViewEvent,
)
from shoploop.engine.config import EngineConfig, RecommenderSettings
from shoploop.evaluation.sequential_protocol import evaluate_next_item
from shoploop.recommend.base import Recommender
from shoploop.recommend.ease import EASE, EASEConfig
from shoploop.recommend.item_knn import ItemKNN, ItemKNNConfig
from shoploop.recommend.popularity import Popularity
from shoploop.recommend.sasrec import SASRec, SASRecConfig
from shoploop.recommend.sasrec_ease import SASRecEASE, pick_ease_weight
from shoploop.recommend.sasrec_trainer import TrainConfig
from shoploop.retrieval.hybrid import HybridSearcher
from shoploop.store.home import Stores
from shoploop.store.protocols import ModelVersion

log = logging.getLogger("shoploop.training")

RECOMMENDER_KINDS: dict[str, type] = {
    "sasrec": SASRec,
    "sasrec_ease": SASRecEASE,
    "item_knn": ItemKNN,
    "ease": EASE,
    "popularity": Popularity,
}


@dataclass
class Interactions:
    """Shopper behaviour turned into what the models train on."""

    sequences: dict[str, list[str]]  # user -> item ids in time order (views, clicks, carts, buys)
    timestamps: dict[str, list[float]]
    baskets: list[list[str]]  # one list per order (purchase event)
    query_clicks: list[tuple[str, str]]  # (query, clicked item) for the category-intent model
    purchases_by_user: dict[str, list[str]]  # user -> purchased items in time order


def collect_interactions(events: Iterable[BaseEvent]) -> Interactions:
    sequences: dict[str, list[str]] = defaultdict(list)
    stamps: dict[str, list[float]] = defaultdict(list)
    baskets: list[list[str]] = []
    served_query: dict[str, str] = {}
    query_clicks: list[tuple[str, str]] = []
    purchases: dict[str, list[str]] = defaultdict(list)
    for ev in events:
        if isinstance(ev, ImpressionEvent):
            if ev.surface == "search" and ev.query:
                served_query[ev.request_id] = ev.query
            continue
        if isinstance(ev, SearchEvent):
            continue
        ts = ev.timestamp.timestamp()
        if isinstance(ev, PurchaseEvent):
            basket = [line.item_id for line in ev.items]
            baskets.append(basket)
            purchases[ev.user_id].extend(basket)
            for item in basket:
                _push(sequences[ev.user_id], stamps[ev.user_id], item, ts)
            continue
        if isinstance(ev, ViewEvent | ClickEvent | AddToCartEvent):
            _push(sequences[ev.user_id], stamps[ev.user_id], ev.item_id, ts)
            if isinstance(ev, ClickEvent | AddToCartEvent) and ev.request_id in served_query:
                query_clicks.append((served_query[ev.request_id], ev.item_id))
    return Interactions(dict(sequences), dict(stamps), baskets, query_clicks, dict(purchases))


def _push(seq: list[str], stamps: list[float], item: str, ts: float) -> None:
    # A view, then a click, then a cart of the same item is one step of the journey.
    if seq and seq[-1] == item:
        return
    seq.append(item)
    stamps.append(ts)


def train_searcher(
    products: Sequence[Product], interactions: Interactions, config: EngineConfig
) -> HybridSearcher:
    started = time.perf_counter()
    searcher = HybridSearcher(config.search).fit(products)
    if len(interactions.query_clicks) >= 50:
        queries, items = zip(*interactions.query_clicks, strict=True)
        try:
            searcher.fit_intent(list(queries), list(items))
        except ValueError as err:  # e.g. a catalog without categories
            log.info("category intent not trained: %s", err)
    log.info("search index over %d products in %.1fs", len(products), time.perf_counter() - started)
    return searcher


@dataclass
class RecommenderBundle:
    """Everything recommendation surfaces need, over one shared item index."""

    items: IdMap
    model: Recommender
    kind: str
    covisit: ItemKNN  # co-view / co-purchase neighbourhoods for "similar items"
    baskets: ItemKNN | None  # purchase co-occurrence for "bought together"

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.items.save(directory / "items.json")
        (directory / "bundle.json").write_text(
            json.dumps({"kind": self.kind, "has_baskets": bool(self.baskets)})
        )
        self.model.save(directory / "model")
        self.covisit.save(directory / "covisit")
        if self.baskets is not None:
            self.baskets.save(directory / "baskets")

    @classmethod
    def load(cls, directory: Path) -> RecommenderBundle:
        meta = json.loads((directory / "bundle.json").read_text())
        model_cls = RECOMMENDER_KINDS[meta["kind"]]
        return cls(
            items=IdMap.load(directory / "items.json"),
            model=model_cls.load(directory / "model"),
            kind=meta["kind"],
            covisit=ItemKNN.load(directory / "covisit"),
            baskets=ItemKNN.load(directory / "baskets") if meta["has_baskets"] else None,
        )


def _indexed(seqs: Iterable[Sequence[str]], items: IdMap) -> list[list[int]]:
    return [[items.get(i) for i in seq if i in items] for seq in seqs]


def train_recommender(
    products: Sequence[Product],
    interactions: Interactions,
    settings: RecommenderSettings,
    *,
    text_vectors: np.ndarray | None,
    seed: int,
) -> tuple[RecommenderBundle, dict[str, float]]:
    """Fit the next-item model and the neighbourhoods; returns the bundle and its metrics.

    `text_vectors` (n_items + 1, d), rows aligned with the catalog order of `products`
    (row 0 = padding), lets the sequential model recommend items nobody has touched yet.
    """
    items = IdMap(p.item_id for p in products)
    users = sorted(interactions.sequences)
    seqs = [s for s in _indexed((interactions.sequences[u] for u in users), items) if s]
    n_items = len(items)
    metrics: dict[str, float] = {"users": float(len(seqs)), "items": float(n_items)}
    kind = settings.kind if len(seqs) >= settings.min_users else "item_knn"
    started = time.perf_counter()
    model: Recommender
    if kind == "sasrec":
        # Hold out each user's last step for early stopping and for the promotion metrics.
        train = [s[:-1] for s in seqs if len(s) >= 3] + [s for s in seqs if len(s) < 3]
        valid = [(s[:-1], s[-1]) for s in seqs if len(s) >= 3]
        config = SASRecConfig(
            max_len=settings.max_len,
            hidden=settings.hidden,
            use_text=settings.use_text and text_vectors is not None,
            text_whitening=settings.text_whitening,
            token_bag=settings.word_bag,
            train=TrainConfig(
                epochs=settings.epochs, budget_minutes=settings.time_budget_minutes, seed=seed, patience=5
            ),
        )
        model = SASRec(config).fit(
            train,
            n_items,
            item_text_emb=text_vectors if config.use_text else None,
            item_texts=["", *(p.text() for p in products)] if config.token_bag else None,
            valid=([h for h, _ in valid], [t for _, t in valid]) if valid else None,
        )
        best = max((h.get("valid_ndcg10", 0.0) for h in getattr(model, "history_", [])), default=0.0)
        metrics["valid_ndcg10"] = float(best)
        if valid and n_items <= settings.ease_max_items and any(w > 0 for w in settings.ease_weights):
            model, kind = _blend_with_ease(model, train, valid, n_items, settings, metrics)
    else:
        model = RECOMMENDER_KINDS[kind]().fit(seqs, n_items)
    metrics["train_seconds"] = time.perf_counter() - started
    covisit = ItemKNN(ItemKNNConfig()).fit(seqs, n_items)
    # Orders with two or more lines are the direct evidence; a shopper's purchases across
    # orders are weaker evidence of the same kind, and small shops have few large orders.
    per_user = _indexed(interactions.purchases_by_user.values(), items)
    basket_seqs = [s for s in _indexed(interactions.baskets, items) + per_user if len(s) >= 2]
    baskets = ItemKNN(ItemKNNConfig(window=50)).fit(basket_seqs, n_items) if basket_seqs else None
    return RecommenderBundle(items, model, kind, covisit, baskets), metrics


def _blend_with_ease(
    sasrec: SASRec,
    train: list[list[int]],
    valid: list[tuple[list[int], int]],
    n_items: int,
    settings: RecommenderSettings,
    metrics: dict[str, float],
) -> tuple[Recommender, str]:
    """SASRec mixed with EASE at the share that is best on the held-out last steps (or alone).

    EASE's L2 is picked first on EASE alone, then its share of the blend; both on the same
    held-out steps SASRec early-stopped on, as `benchmarks/sequential.py` picks them."""
    histories, targets = [h for h, _ in valid], [t for _, t in valid]

    def ndcg(model: Recommender) -> float:
        return evaluate_next_item(model, histories, targets, n_items).get("ndcg@10", 0.0)

    started = time.perf_counter()
    ease, best = None, -1.0
    for l2 in settings.ease_l2s:  # one at a time: each holds an items x items matrix
        candidate = EASE(EASEConfig(l2=l2)).fit(train, n_items)
        if (score := ndcg(candidate)) > best:
            ease, best = candidate, score
    assert ease is not None  # RecommenderSettings refuses an empty ease_l2s
    weight, by_weight = pick_ease_weight(sasrec, ease, settings.ease_weights, ndcg)
    metrics["ease_weight"] = weight
    metrics["ease_seconds"] = time.perf_counter() - started
    log.info("recommender: EASE share %g (held-out NDCG@10 by share %s)", weight, by_weight)
    if weight == 0:
        return sasrec, "sasrec"
    metrics["valid_ndcg10"] = by_weight[weight]
    return SASRecEASE.of_fitted(sasrec, ease, weight), "sasrec_ease"


def register(stores: Stores, name: str, save, *, metrics: dict, config: dict) -> ModelVersion:
    """Save an artifact to a temporary directory and register it as a candidate."""
    with tempfile.TemporaryDirectory(prefix=f"shoploop-{name}-") as tmp:
        save(Path(tmp))
        return stores.registry.register(name, Path(tmp), metrics=metrics, config=config)
