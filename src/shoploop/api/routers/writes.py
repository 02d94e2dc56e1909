"""Writes: event intake, catalog changes and user erasure. None of them is ever open."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from shoploop.api.deps import CatalogAuth, EngineDep, EventsAuth, SettingsDep, require
from shoploop.api.errors import ERROR_RESPONSES, NOT_FOUND, ApiError
from shoploop.api.schemas import (
    CatalogChange,
    DeletionReceipt,
    EventBatch,
    EventBatchResult,
    EventResult,
    ProductBatch,
    ProductBody,
    ShopperData,
)
from shoploop.domain import Product
from shoploop.engine import NotFound

events_router = APIRouter(tags=["events"], dependencies=[EventsAuth], responses=ERROR_RESPONSES)
catalog_router = APIRouter(tags=["catalog"], dependencies=[CatalogAuth], responses=ERROR_RESPONSES)
users_router = APIRouter(tags=["privacy"], dependencies=[require("admin")], responses=ERROR_RESPONSES)

ItemPath = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$", examples=["P00017"])]


@events_router.post(
    "/v1/events",
    response_model=EventBatchResult,
    summary="Send shopper events (batch)",
    description=(
        "Each event is answered on its own: `accepted`, `duplicate` (its `event_id` was stored "
        "before, so re-sending a batch after a timeout is safe) or `rejected` with the reason, "
        "which names the field. Rejected rows are kept in the quarantine. Clicks, carts and "
        "purchases should carry the `request_id` of the list they came from (and clicks their "
        "`position`), which is what lets the engine learn from them."
    ),
)
def post_events(
    request: Request, settings: SettingsDep, engine: EngineDep, batch: EventBatch
) -> EventBatchResult:
    if len(batch.events) > settings.max_batch:
        raise ApiError(
            422,
            "invalid_request",
            f"events: at most {settings.max_batch} events per batch (got {len(batch.events)}); split it",
            "events",
        )
    if not batch.events:
        return EventBatchResult(accepted=0, duplicate=0, rejected=0, results=[])
    outcomes = engine.ingest_events(batch.events)
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    results = []
    for o in outcomes:
        counts[o.status] += 1
        results.append(EventResult(index=o.index, event_id=o.event_id, status=o.status, reason=o.reason))
    metrics = request.app.state.metrics
    for status, n in counts.items():
        if n:
            metrics.events.labels(status).inc(n)
    request.app.state.live.record_events(
        (o.event for o in outcomes if o.event is not None), counts["rejected"], counts["duplicate"]
    )
    return EventBatchResult(**counts, results=results)


def _product(item_id: str, body: ProductBody) -> Product:
    if body.item_id is not None and body.item_id != item_id:
        raise ApiError(
            422,
            "invalid_request",
            f"item_id: body says {body.item_id!r} but the path says {item_id!r}",
            "item_id",
        )
    data: dict[str, Any] = body.model_dump(exclude_unset=True)
    data["item_id"] = item_id
    return Product.model_validate(data)


@catalog_router.put(
    "/v1/items/{item_id}",
    response_model=CatalogChange,
    summary="Insert or replace one product",
    description="Search and recommendations see the change on the next request; no restart.",
)
def put_item(engine: EngineDep, item_id: ItemPath, body: ProductBody) -> CatalogChange:
    product = _product(item_id, body)
    version = engine.upsert_products([product])
    return CatalogChange(catalog_version=version, upserted=1, item_ids=[item_id])


@catalog_router.post(
    "/v1/items/batch",
    response_model=CatalogChange,
    summary="Insert or replace many products (all-or-nothing)",
)
def post_items(engine: EngineDep, settings: SettingsDep, batch: ProductBatch) -> CatalogChange:
    if len(batch.items) > settings.max_batch:
        raise ApiError(
            422,
            "invalid_request",
            f"items: at most {settings.max_batch} products per batch; split it",
            "items",
        )
    ids = [p.item_id for p in batch.items]
    if len(set(ids)) != len(ids):
        raise ApiError(422, "invalid_request", "items: the same item_id appears twice in the batch", "items")
    if not batch.items:
        return CatalogChange(catalog_version=engine.stores.catalog.version)
    version = engine.upsert_products(batch.items)
    return CatalogChange(catalog_version=version, upserted=len(ids), item_ids=ids)


@catalog_router.delete(
    "/v1/items/{item_id}", response_model=CatalogChange, responses=NOT_FOUND, summary="Remove a product"
)
def delete_item(engine: EngineDep, item_id: ItemPath) -> CatalogChange:
    if item_id not in engine.products:
        raise NotFound("item", item_id)
    version = engine.delete_products([item_id])
    return CatalogChange(catalog_version=version, deleted=1, item_ids=[item_id])


UserPath = Annotated[str, Path(min_length=1, max_length=200)]


@users_router.delete(
    "/v1/users/{user_id}",
    response_model=DeletionReceipt,
    summary="Erase a shopper",
    description=(
        "Deletes the shopper's events, quarantined rows naming them, their online state "
        "(profile, session, counters), their autocomplete contributions and their A/B exposures, "
        "and answers with a receipt of what was removed."
    ),
)
def delete_user(request: Request, engine: EngineDep, user_id: UserPath) -> DeletionReceipt:
    return DeletionReceipt(**engine.delete_user(user_id, experiments=request.app.state.experiments))


@users_router.get(
    "/v1/users/{user_id}/data",
    response_model=ShopperData,
    summary="Everything held about a shopper",
    description=(
        "The shopper's right of access and to data portability: their events, bot flag, "
        "quarantined rows naming them, online profile, the queries they count towards for "
        "autocomplete and their A/B exposures, as one JSON document (`not_included` says what "
        "is kept only as totals over all shoppers). A shopper shoploop has never seen gets the "
        'same document with empty sections, not a 404: the answer to "what do you hold about '
        'me" is then "nothing".'
    ),
)
def export_user(request: Request, engine: EngineDep, user_id: UserPath) -> ShopperData:
    return ShopperData(**engine.export_user(user_id, experiments=request.app.state.experiments))
