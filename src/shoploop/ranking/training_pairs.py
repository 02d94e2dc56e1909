"""Graded (query, product text) training pairs for the cross-encoder, mined from judgments + retrieval.

Three kinds of example come out of `mine_pairs`, all as `GradedPair` with a label in [0, 1]:

* **judged** — every judged (query, item, relevance) triple, label ``(rel - 1) / (max_relevance - 1)``.
  Low-relevance judgments are kept as *graded* negatives: they are the hardest, cleanest negatives we
  have because a human looked at them.
* **hard** — items the retriever ranks highly for the query but that nobody judged for it, label 0.
  They are sampled uniformly from a rank window ``[skip_top, hard_window)``, which matches the
  candidates the re-ranker sees at query time (the top-K of the same retriever). Unjudged is not
  the same as irrelevant, so how many to take depends on what the model is judged by: where
  unjudged counts as irrelevant (Home Depot's full-catalog NDCG), 8 per query did somewhat better
  than 2 (benchmarks/search_relevance.py says by how much, and how sure that is). ``skip_top``
  drops the top ranks, the likeliest relevant-but-unjudged items, for data where judgments are
  sparse.
* **random** — uniformly drawn catalog items not judged for the query, label 0; they keep the model
  calibrated on easy negatives that BM25 would never surface.

Every pair carries its ``query`` (the group key for listwise training: one positive + k negatives of
the same query), the item id and its kind, so callers can re-group or filter. Output is deterministic
for a given seed: queries are processed in sorted order and each draws from a seeded generator.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

PairKind = Literal["judged", "hard", "random"]


@dataclass(frozen=True)
class GradedPair:
    """One (query, document text) example with a graded label in [0, 1] (1 = perfectly relevant)."""

    query: str
    doc: str
    label: float
    doc_id: str | None = None
    kind: PairKind = "judged"

    def __post_init__(self) -> None:
        if not 0.0 <= self.label <= 1.0:
            raise ValueError(f"GradedPair.label must lie in [0, 1], got {self.label!r}")


def relevance_to_label(relevance: float, max_relevance: float = 3.0, min_relevance: float = 1.0) -> float:
    """Map a judged relevance in [min, max] linearly onto [0, 1] (clipped)."""
    if max_relevance <= min_relevance:
        raise ValueError("max_relevance must exceed min_relevance")
    x = (float(relevance) - min_relevance) / (max_relevance - min_relevance)
    return min(1.0, max(0.0, x))


def group_by_query(pairs: Sequence[GradedPair]) -> dict[str, list[GradedPair]]:
    """Pairs grouped by query, in first-seen order (stable, so training stays deterministic)."""
    groups: dict[str, list[GradedPair]] = {}
    for p in pairs:
        groups.setdefault(p.query, []).append(p)
    return groups


def mine_pairs(
    judgments: Sequence[tuple[str, str, float]],
    product_text: Mapping[str, str],
    retrieve: Callable[[str, int], list[str]],
    *,
    n_hard: int,
    n_random: int,
    seed: int,
    max_relevance: float = 3.0,
    skip_top: int = 0,
    hard_window: int = 50,
) -> list[GradedPair]:
    """Build training pairs from judged triples plus mined negatives.

    Args:
        judgments: (query, item_id, relevance) triples; relevance in [1, max_relevance].
        product_text: item_id -> text the model will read (e.g. the title). Judged items missing here
            are skipped; the key set is also the pool for random negatives.
        retrieve: ``retrieve(query, k)`` -> ranked item ids (e.g. BM25); only called when ``n_hard > 0``.
        n_hard: hard negatives per query (unjudged items from the retriever's rank window).
        n_random: random unjudged catalog items per query.
        seed: makes the sampling reproducible.
        skip_top: unjudged retrieved items at ranks < skip_top are never used (likely false negatives).
        hard_window: hard negatives are sampled uniformly from ranks [skip_top, hard_window).

    Returns:
        Pairs grouped by query (all pairs of a query are contiguous), queries in sorted order.
        A judged item never appears as a hard/random negative of the same query.
    """
    if n_hard < 0 or n_random < 0:
        raise ValueError("n_hard and n_random must be >= 0")
    if hard_window <= skip_top and n_hard > 0:
        raise ValueError("hard_window must exceed skip_top")
    judged: dict[str, dict[str, float]] = {}
    for query, item_id, rel in judgments:
        # duplicates (same query judged twice for one item) keep the mean relevance
        prev = judged.setdefault(query, {})
        if item_id in prev:
            prev[item_id] = (prev[item_id] + float(rel)) / 2.0
        else:
            prev[item_id] = float(rel)
    catalog = sorted(product_text)
    rng = random.Random(seed)
    out: list[GradedPair] = []
    for query in sorted(judged):
        items = judged[query]
        for item_id in sorted(items):
            text = product_text.get(item_id)
            if text is None:
                continue
            out.append(
                GradedPair(query, text, relevance_to_label(items[item_id], max_relevance), item_id, "judged")
            )
        used: set[str] = set(items)
        if n_hard > 0:
            ranked = retrieve(query, hard_window)
            window = [i for i in ranked[skip_top:hard_window] if i not in used and i in product_text]
            window = list(dict.fromkeys(window))  # a retriever may repeat ids; keep first occurrence
            for item_id in rng.sample(window, min(n_hard, len(window))):
                used.add(item_id)
                out.append(GradedPair(query, product_text[item_id], 0.0, item_id, "hard"))
        # rejection sampling: the catalog is far larger than any query's judged set
        drawn, attempts = 0, 0
        while drawn < n_random and attempts < 20 * n_random + 20 and catalog:
            attempts += 1
            item_id = catalog[rng.randrange(len(catalog))]
            if item_id in used:
                continue
            used.add(item_id)
            drawn += 1
            out.append(GradedPair(query, product_text[item_id], 0.0, item_id, "random"))
    return out
