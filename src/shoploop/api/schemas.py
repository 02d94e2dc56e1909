"""Request and response bodies of the HTTP API (served lists reuse `shoploop.domain.served`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shoploop.domain import Product
from shoploop.evaluation.search_queries import QueryRow

EXAMPLE_EVENTS: list[dict[str, Any]] = [
    {
        "event_id": "evt-000123",
        "type": "click",
        "user_id": "user-0001",
        "session_id": "s-42",
        "item_id": "P00017",
        "request_id": "3f1c0e9a6b2d4e8f9a0b1c2d3e4f5a6b",
        "position": 2,
        "timestamp": "2026-01-05T10:15:00+00:00",
    },
    {
        "event_id": "evt-000124",
        "type": "purchase",
        "user_id": "user-0001",
        "request_id": "3f1c0e9a6b2d4e8f9a0b1c2d3e4f5a6b",
        "items": [{"item_id": "P00017", "quantity": 1, "price": 24.9}],
        "timestamp": "2026-01-05T10:19:00+00:00",
    },
]


class EventBatch(BaseModel):
    """Shopper events (see docs/events.md). Each is judged on its own; `event_id` makes re-sends safe."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"events": EXAMPLE_EVENTS}]})

    events: list[dict[str, Any]] = Field(description="one object per event, any of the nine event types")


class EventResult(BaseModel):
    index: int = Field(description="position in the submitted batch, 0-based")
    event_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str | None = Field(default=None, description="why it was rejected; names the field")


class EventBatchResult(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
    results: list[EventResult]


class ProductBody(Product):
    """A product; `item_id` may be left out of the body (the path names it)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Cordless drill 18V",
                    "category_path": ["Tools", "Power Tools", "Drills"],
                    "brand": "Voltix",
                    "price": 89.0,
                    "attributes": {"voltage": 18},
                    "in_stock": True,
                }
            ]
        },
    )

    item_id: str | None = Field(default=None, min_length=1, max_length=200)  # type: ignore[assignment]


class ProductBatch(BaseModel):
    items: list[Product] = Field(description="products to insert or replace, all-or-nothing")


class CatalogChange(BaseModel):
    catalog_version: int
    upserted: int = 0
    deleted: int = 0
    item_ids: list[str] = Field(default_factory=list)


class SuggestionOut(BaseModel):
    text: str = Field(examples=["cordless drill"])
    source: Literal["searches", "catalog"] = Field(
        description="searches: other shoppers searched it and found something; catalog: names products"
    )
    score: float = Field(description="searches: recent successful searches (faded); catalog: products named")


class Suggestions(BaseModel):
    q: str
    suggestions: list[SuggestionOut]


class QueryAnalytics(BaseModel):
    window_days: float | None = Field(description="searches of the last N days; null = all time")
    distinct_queries: int
    from_suggestion_share: float | None = Field(
        description="searches whose query was picked from autocomplete"
    )
    keystrokes_saved: float | None = Field(
        description="mean share of a picked query the shopper did not type"
    )
    # the analytics rows themselves (a dataclass pydantic serialises as it is)
    top: list[QueryRow] = Field(description="most searched")
    no_results: list[QueryRow] = Field(
        description="found nothing most often: products, synonyms or redirects"
    )
    unclicked: list[QueryRow] = Field(description="served at least min_lists times, lowest list CTR first")


class SuggestBlocklist(BaseModel):
    terms: str = Field(
        max_length=400_000,
        description="words or phrases autocomplete must never suggest, one a line; '#' comments",
        examples=["knockoff\nfree shipping scam"],
    )
    count: int = Field(default=0, description="terms in force (answers only)")


class SynonymsIn(BaseModel):
    rules: str = Field(
        max_length=200_000,
        description="one rule a line: 'a, b, c' (same meaning) or 'a, b => c' (rewrite); '#' comments",
        examples=["unicorn lamp => night light\nsofa, couch, settee"],
    )


class SynonymsOut(BaseModel):
    rules: str = Field(description="the shop's own rules, applied on top of the packaged defaults")
    groups: int
    rewrites: int
    one_way: int = Field(description='one-way expansions: "a => a, b" (a also finds b)')
    default_groups: int | None = Field(
        description="rules of the packaged defaults (null before an index exists)"
    )
    default_rewrites: int | None


class ModelInfo(BaseModel):
    name: str
    version: int
    status: str
    active: bool
    created_at: datetime
    metrics: dict[str, Any]
    config: dict[str, Any]


class ModelDecision(BaseModel):
    """One entry of the model registry's audit trail."""

    name: str = Field(examples=["ranker"])
    version: int
    action: str = Field(description="register, promote, reject, retire or rollback", examples=["reject"])
    reason: str = Field(
        description="why, in words: a gate's verdict with its numbers, or what a person typed",
        examples=["gate: NDCG@10 0.4120 < active 0.4300 - 0.005"],
    )
    at: datetime
    evidence: dict[str, Any] = Field(
        description="the metrics the decision was taken on (the version's metrics; a gate's under 'gate')"
    )


class Reason(BaseModel):
    reason: str = Field(default="manual, via the API", max_length=500)


class ShopperData(BaseModel):
    """What `GET /v1/users/{user_id}/data` returns; `shoploop.privacy.access` says what each part is."""

    user_id: str = Field(description="the id as asked for")
    stored_as: str = Field(description="the id shoploop stores (a pseudonym when ids are pseudonymised)")
    exported_at: str
    events: list[dict[str, Any]]
    event_counts: dict[str, int]
    flagged_as_bot: str | None = Field(description="why the shopper was flagged as a bot, if they were")
    quarantined_rows: list[dict[str, Any]]
    online_profile: dict[str, Any] | None
    autocomplete_queries: list[str]
    experiment_exposures: list[dict[str, Any]] | None
    not_included: str


class DeletionReceipt(BaseModel):
    user_id: str
    events_deleted: int
    quarantined_rows_deleted: int
    online_state: dict[str, Any]
    experiment_exposures_deleted: int | None = None
    note: str


MetricName = Literal["conversion", "click", "add_to_cart", "revenue"]


class MetricIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: MetricName
    kind: Literal["proportion", "mean"] = "proportion"
    direction: Literal["increase", "decrease"] = "increase"
    max_relative_harm: float = Field(default=0.0, ge=0, le=1)


class VariantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    share: float = Field(gt=0, le=1)
    model_version: str | None = Field(
        default=None,
        max_length=200,
        description="model versions this variant's shoppers are served instead of the active "
        "ones, 'name:vN' or 'name:none' joined by '+': cross_encoder and ranker on search, "
        "recommender on the home feed",
        examples=["ranker:v3", "ranker:v3+cross_encoder:none", "recommender:v2"],
    )
    policy: str | None = Field(
        default=None,
        max_length=100,
        description="'deterministic' (no exploration) or 'explore' (the default)",
    )
    description: str = Field(default="", max_length=1000)


class ExperimentIn(BaseModel):
    """An A/B test: the first variant is the control. Shares must sum to 1."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "search-ranker-v1",
                    "name": "Search: learned ranker v1 vs no learned ranker",
                    "surface": "search",
                    "variants": [
                        {"name": "control", "share": 0.5, "model_version": "ranker:none"},
                        {"name": "treatment", "share": 0.5, "model_version": "ranker:v1"},
                    ],
                    "primary_metric": {"name": "conversion", "kind": "proportion"},
                    "guardrails": [{"name": "click", "kind": "proportion", "max_relative_harm": 0.05}],
                    "start": True,
                }
            ]
        },
    )

    id: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=2000)
    surface: str | None = Field(default=None, max_length=64)
    variants: list[VariantIn] = Field(min_length=2, max_length=10)
    primary_metric: MetricIn
    guardrails: list[MetricIn] = Field(default_factory=list, max_length=10)
    traffic_fraction: float = Field(default=1.0, gt=0, le=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    start: bool = Field(default=True, description="start at once (else it stays a draft)")

    @model_validator(mode="after")
    def _variants(self) -> ExperimentIn:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variants: names must be unique")
        if abs(sum(v.share for v in self.variants) - 1.0) > 1e-6:
            raise ValueError("variants: shares must sum to 1")
        return self


class ExperimentOut(BaseModel):
    experiment: dict[str, Any]
    exposures: dict[str, int]
    readout: list[dict[str, Any]] = Field(default_factory=list)


class Health(BaseModel):
    status: str
    ready: bool
    products: int
    models: dict[str, int]
