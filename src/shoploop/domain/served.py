"""What the engine hands back for every surface: a ranked list with a request id.

The same shape serves search, the home feed, similar items, bought-together and
trending, so the API, the storefront and the impression log need only one type.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ServedItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    item_id: str
    position: int = Field(ge=1)
    score: float
    propensity: float | None = Field(default=None, gt=0, le=1)
    reasons: tuple[str, ...] = ()
    # Free-form, per-stage detail: matched terms, which retriever found it, re-ranker
    # score, feature contributions, merchandising rules that touched it.
    explanation: dict[str, Any] = Field(default_factory=dict)
    title: str | None = None
    price: float | None = None
    category: str | None = None
    brand: str | None = None
    in_stock: bool | None = None


class ServedList(BaseModel):
    model_config = ConfigDict(frozen=True)

    request_id: str
    surface: str
    items: tuple[ServedItem, ...]
    policy: str
    # True when the exploration policy drew this list's order at random (see `policy`).
    explored: bool = False
    model_version: str | None = None
    query: str | None = None
    understood_query: dict[str, Any] | None = None
    facets: dict[str, dict[str, int]] = Field(default_factory=dict)
    redirect: str | None = None
    total_candidates: int | None = None
    # The order the shopper asked for ("price_asc", "price_desc"); None = by relevance.
    sort: str | None = None
    # The category of a category page (surface "browse").
    category: str | None = None
