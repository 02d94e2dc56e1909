"""Category pages: every product of a category, in the order that sells best to this shopper.

A shop's category pages ("Tools > Drills", 400 products, 24 a page) are where shoppers who do
not type land. Their order is the engine's choice, as a search's is, so it is served like any
list: rules, exploration, an impression with propensities, facets over the category.

The "featured" order (the default) scores each product of the category as

    score = popularity + model_weight * z(model) + affinity      (in-stock products first)

* popularity: the shop's trending value (decayed clicks, carts, purchases) on a log scale,
  divided by the category's largest, so it lies in [0, 1] whatever the category's traffic;
* z(model): the shopper's recommender scores for the category's products, standardised within
  the category (0 for a shopper without history): what this shopper is likely to want next;
* affinity: how much the shopper engaged with the product's brand and leaf category
  (decayed counts squashed by tanh, so a few clicks count and a hundred do not swamp
  popularity), minus one for a product they disliked; times `affinity_weight`.

Out-of-stock products stay on the page (a shopper may want to see them) but after every
in-stock one. Price orders sort the whole category (unpriced products last).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from shoploop.retrieval.filters import CatalogColumns, Filters

OUT_OF_STOCK_PENALTY = 10.0  # larger than any in-stock score can differ by

# The orders a shopper may ask a search or a category page for ("relevance" = the engine's).
ListOrder = Literal["relevance", "price_asc", "price_desc"]
LIST_ORDERS: tuple[str, ...] = get_args(ListOrder)


@dataclass
class CategoryListing:
    """What a category page needs that does not depend on the shopper: the products passing the
    page's filters (search-index keys and ids, in catalog order), their columns and the facets.
    Built once per (category, filters, catalog state) and reused: a 10k-product category costs
    ~5 ms of Python to gather, more than the rest of the page."""

    keys: np.ndarray
    ids: list[str]
    in_stock: np.ndarray
    prices: np.ndarray
    brands: list[str | None]
    leaves: list[str | None]
    facets: dict[str, dict[str, int]]
    # the columns it was built from: a cache keyed by their id must not trust a recycled id
    source: CatalogColumns | None = None
    # per recommender item table (by id, kept alongside so a recycled id cannot match): each
    # product's index in that table (0 = unknown to the model)
    model_index: dict[int, tuple[object, np.ndarray]] = field(default_factory=dict)
    # (the trending snapshot it was read from, popularity per product)
    popularity: tuple[object, np.ndarray] | None = None


def build_listing(columns: CatalogColumns, ids: Sequence[str], filters: Filters) -> CategoryListing:
    """The listing of the products passing `filters` (which name the category)."""
    keys = np.flatnonzero(columns.mask(filters))
    facets = columns.facets(keys)
    if filters.brand is not None:  # the brand facet as if no brand were ticked, as in search
        any_brand = columns.mask(filters.model_copy(update={"brand": None}))
        facets["brand"] = columns.facets(np.flatnonzero(any_brand))["brand"]
    key_list = keys.tolist()
    return CategoryListing(
        keys=keys,
        ids=[ids[k] for k in key_list],
        in_stock=columns.in_stock[keys],
        prices=columns.price[keys],
        brands=[columns.brand[k] for k in key_list],
        leaves=[columns.category[k][-1] if columns.category[k] else None for k in key_list],
        facets=facets,
        source=columns,
    )


def popularity_scale(values: np.ndarray) -> np.ndarray:
    """Trending values -> [0, 1]: log1p, divided by the largest (all zeros stay zeros)."""
    logged = np.log1p(np.maximum(np.asarray(values, dtype=np.float64), 0.0))
    top = logged.max() if len(logged) else 0.0
    return logged / top if top > 0 else logged


# A spread of model scores below this is a model's tie-breaking (item-kNN adds 1e-6 x
# popularity to break ties), not a preference; scaled up to z-scores it would count
# popularity twice.
MIN_MODEL_SPREAD = 1e-4


def standardise(values: np.ndarray, min_spread: float = MIN_MODEL_SPREAD) -> np.ndarray:
    """z-scores over the finite entries; non-finite entries (items the model does not know)
    become 0, and so does everything when the spread (std) is below `min_spread`."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    out = np.zeros_like(v)
    if finite.sum() < 2:
        return out
    mean, std = v[finite].mean(), v[finite].std()
    if std > min_spread:
        out[finite] = (v[finite] - mean) / std
    return out


def affinity_scores(
    brands: Sequence[str | None],
    leaves: Sequence[str | None],
    brand_affinity: Mapping[str, float],
    category_affinity: Mapping[str, float],
    disliked: Sequence[bool],
) -> np.ndarray:
    """Per product: half the squashed brand affinity plus half the squashed leaf-category
    affinity, in [0, 1), minus 1 when disliked. tanh(0.5 x): one click ~0.46, three ~0.91."""
    brand = np.array([brand_affinity.get(b, 0.0) if b else 0.0 for b in brands], dtype=np.float64)
    leaf = np.array([category_affinity.get(c, 0.0) if c else 0.0 for c in leaves], dtype=np.float64)
    return 0.5 * np.tanh(0.5 * brand) + 0.5 * np.tanh(0.5 * leaf) - np.asarray(disliked, dtype=np.float64)


def featured_scores(
    popularity: np.ndarray,
    in_stock: np.ndarray,
    *,
    model_z: np.ndarray | None = None,
    model_weight: float = 0.5,
    affinity: np.ndarray | None = None,
    affinity_weight: float = 1.0,
) -> np.ndarray:
    """The featured order's score per product (see the module doc); higher first. `model_z`:
    the shopper's model scores already standardised within the category (`standardise`)."""
    score = popularity_scale(popularity)
    if model_z is not None:
        score = score + model_weight * np.asarray(model_z, dtype=np.float64)
    if affinity is not None:
        score = score + affinity_weight * np.asarray(affinity, dtype=np.float64)
    return score - OUT_OF_STOCK_PENALTY * ~np.asarray(in_stock, dtype=bool)


def best_first(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the `n` highest scores, best first; ties keep index order (catalog order)."""
    n = min(n, len(scores))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    if n < len(scores):
        head = np.argpartition(-scores, n - 1)[:n]
        return head[np.lexsort((head, -scores[head]))]
    return np.lexsort((np.arange(len(scores)), -scores))


def price_first(prices: np.ndarray, order: str, n: int) -> np.ndarray:
    """Indices of the first `n` products by price ("price_asc" / "price_desc"), unpriced last,
    equal prices in index order."""
    p = np.asarray(prices, dtype=np.float64)
    unpriced = np.isnan(p)
    key = np.where(unpriced, 0.0, -p if order == "price_desc" else p)
    ranked = np.lexsort((np.arange(len(p)), key, unpriced))
    return ranked[: max(n, 0)]
