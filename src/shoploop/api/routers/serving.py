"""Search and recommendation surfaces: every answer is a `ServedList` with a `request_id`.

The engine logs each list as an impression; here we also feed the live window (dashboard,
/metrics) and record A/B exposures for running experiments on the surface.

Routes are plain `def`: the engine is synchronous and CPU-bound, so FastAPI runs them in
its threadpool instead of blocking the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from shoploop.api.deps import EngineDep, ReadAuth, SettingsDep
from shoploop.api.errors import ERROR_RESPONSES, NOT_FOUND, ApiError
from shoploop.api.schemas import SuggestionOut, Suggestions
from shoploop.api.settings import ApiSettings
from shoploop.domain import Product
from shoploop.domain.served import ServedList
from shoploop.engine import InvalidRequest
from shoploop.engine.browse import ListOrder
from shoploop.engine.variants import ServingOverride, VariantSpecError, serving_override

log = logging.getLogger("shoploop.api")
router = APIRouter(tags=["search & recommendations"], dependencies=[ReadAuth], responses=ERROR_RESPONSES)

UserQ = Annotated[
    str | None,
    Query(max_length=200, description="the shopper (personalises and is logged)", examples=["user-0001"]),
]
SessionQ = Annotated[
    str | None, Query(max_length=200, description="the shopper's session", examples=["s-42"])
]
KQ = Annotated[int | None, Query(ge=1, le=1000, description="list length (default 20, at most max_k)")]
ItemPath = Annotated[
    str, Path(min_length=1, max_length=200, description="catalog item id", examples=["P00017"])
]


BrandQ = Annotated[
    list[str] | None,
    Query(description="a brand; repeat for several, any of which may match", examples=[["Voltix"]]),
]
SortQ = Annotated[
    ListOrder,
    Query(description="the engine's order, or by price (no exploration, no boosts)"),
]


@dataclass
class FilterParams:
    """The product filters a search and a category page share (query parameters)."""

    brand: BrandQ = None
    min_price: Annotated[float | None, Query(ge=0, le=1e9)] = None
    max_price: Annotated[float | None, Query(ge=0, le=1e9)] = None
    in_stock: Annotated[bool | None, Query()] = None

    def as_filters(self, **more: Any) -> dict[str, Any]:
        """The engine's filter mapping; a brand name over 200 characters is refused by index."""
        for i, name in enumerate(self.brand or ()):
            if len(name) > 200:
                raise ApiError(422, "invalid_request", "brand: must be at most 200 characters", f"brand.{i}")
        values = {"brand": self.brand, "min_price": self.min_price, "max_price": self.max_price}
        return {**values, "in_stock": self.in_stock, **more}


FiltersQ = Annotated[FilterParams, Depends()]


def _json(served: ServedList) -> Response:
    """Serialised once by pydantic-core; skips FastAPI re-validating a model we just built."""
    return Response(served.model_dump_json(), media_type="application/json")


def after_serve(request: Request, served: ServedList, user_id: str | None, session_id: str | None) -> None:
    """Live stats, Prometheus counters and A/B exposures for one served list."""
    state = request.app.state
    state.live.record_served(served, user_id, session_id)
    state.metrics.served.labels(served.surface).inc()
    running = state.running_experiments
    # Exposures name the shopper as the event log does (their pseudonym when the shop
    # pseudonymises ids), so the read-out joins them with their events and erasure finds them.
    shopper = state.engine.stored_user_id(user_id) if running else None
    if running and shopper:
        now = datetime.now(UTC)
        exposures = [
            x
            for exp in running
            if exp.surface in (None, served.surface)
            and (x := exp.expose(shopper, now, surface=served.surface, request_id=served.request_id))
        ]
        if exposures:
            try:
                state.experiments.record_exposures(exposures)
            except Exception:  # an experiment store hiccup must not fail the shopper's request
                log.exception("could not record A/B exposures")


def variant_override(request: Request, user_id: str | None, surface: str) -> ServingOverride | None:
    """What the shopper's A/B variant serves instead of the defaults (the first running
    experiment on `surface` that assigns them decides). A variant the engine cannot serve (an
    experiment stored before variants were checked) is logged and served the defaults."""
    running = request.app.state.running_experiments
    shopper = request.app.state.engine.stored_user_id(user_id) if running else None
    if not running or not shopper:
        return None
    for exp in running:
        if exp.surface not in (None, surface):
            continue
        name = exp.assign(shopper)  # the id its exposure is recorded under (after_serve)
        if name is None:
            continue
        variant = next(v for v in exp.variants if v.name == name)
        try:
            return serving_override(f"{exp.id}/{name}", variant.model_version, variant.policy)
        except VariantSpecError as err:
            log.warning("experiment %s variant %s cannot be served: %s", exp.id, name, err)
            return None
    return None


def serve_variant(
    override: ServingOverride | None, serve: Callable[[ServingOverride | None], ServedList]
) -> ServedList:
    """`serve(override)`; the defaults if the variant's model version has left the registry
    (a shopper gets a list either way; the log says which models served it)."""
    try:
        return serve(override)
    except VariantSpecError as err:
        log.warning("serving defaults instead of %s: %s", override.label if override else "?", err)
        return serve(None)


def _check_k(settings: ApiSettings, k: int | None, page: int = 1) -> None:
    if k is not None and k > settings.max_k:
        raise ApiError(422, "invalid_request", f"k: must be at most {settings.max_k}", "k")
    if page > settings.max_page:
        raise ApiError(422, "invalid_request", f"page: must be at most {settings.max_page}", "page")


@router.get(
    "/v1/search",
    response_model=ServedList,
    summary="Search the catalog",
    description=(
        "Hybrid lexical + semantic search with typo correction (`understood_query.corrected`), "
        "filters, facets, personalisation for `user_id`, and merchandising rules. A `redirect` "
        "rule answers with `redirect` set and no items."
    ),
)
def search(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    q: Annotated[
        str, Query(min_length=1, max_length=10_000, description="the query", examples=["cordless drill"])
    ],
    product_filters: FiltersQ,
    category: Annotated[
        str | None, Query(max_length=500, description="category path prefix, 'A > B'", examples=["Tools"])
    ] = None,
    user_id: UserQ = None,
    session_id: SessionQ = None,
    k: KQ = None,
    page: Annotated[int, Query(ge=1, le=1000, description="1-based page of k results")] = 1,
    sort: SortQ = "relevance",
) -> Response:
    if len(q) > settings.max_query_length:
        raise ApiError(
            422, "invalid_request", f"q: must be at most {settings.max_query_length} characters", "q"
        )
    _check_k(settings, k, page)
    filters = product_filters.as_filters(category=category)
    try:
        served = serve_variant(
            variant_override(request, user_id, "search"),
            lambda o: engine.search(
                q,
                user_id=user_id,
                session_id=session_id,
                filters=filters,
                k=k,
                page=page,
                override=o,
                sort=sort,
            ),
        )
    except InvalidRequest as err:
        if err.field == "query":  # the engine's name for what the API calls `q`
            raise InvalidRequest("q", err.reason) from err
        raise
    after_serve(request, served, user_id, session_id)
    return _json(served)


@router.get(
    "/v1/browse",
    response_model=ServedList,
    responses=NOT_FOUND,
    summary="A category page",
    description=(
        "Every product under `category` ('Clothing > Jackets'), featured for the shopper "
        "(popularity, their recommender's scores and brand/category affinity, in stock first) or "
        "by price, with facets and the category's merchandising rules. 404 when no product is in "
        "the category."
    ),
)
def browse(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    category: Annotated[
        str, Query(min_length=1, max_length=500, description="category path, 'A > B'", examples=["Tools"])
    ],
    product_filters: FiltersQ,
    user_id: UserQ = None,
    session_id: SessionQ = None,
    k: KQ = None,
    page: Annotated[int, Query(ge=1, le=1000, description="1-based page of k products")] = 1,
    sort: SortQ = "relevance",
) -> Response:
    _check_k(settings, k, page)
    filters = product_filters.as_filters()
    served = serve_variant(
        variant_override(request, user_id, "browse"),
        lambda o: engine.browse(
            category,
            user_id=user_id,
            session_id=session_id,
            filters=filters,
            k=k,
            page=page,
            override=o,
            sort=sort,
        ),
    )
    after_serve(request, served, user_id, session_id)
    return _json(served)


@router.get("/v1/recommendations/home", response_model=ServedList, summary="Home feed for a shopper")
def home(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    user_id: UserQ = None,
    session_id: SessionQ = None,
    k: KQ = None,
    category: Annotated[str | None, Query(max_length=500, description="category path prefix")] = None,
) -> Response:
    _check_k(settings, k)
    filters = {"category": category} if category else None
    served = serve_variant(
        variant_override(request, user_id, "home"),
        lambda o: engine.recommend(user_id, session_id=session_id, k=k, filters=filters, override=o),
    )
    after_serve(request, served, user_id, session_id)
    return _json(served)


@router.get(
    "/v1/items/{item_id}/similar", response_model=ServedList, responses=NOT_FOUND, summary="Similar items"
)
def similar(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    item_id: ItemPath,
    user_id: UserQ = None,
    session_id: SessionQ = None,
    k: KQ = None,
) -> Response:
    _check_k(settings, k)
    served = engine.similar(item_id, k=k, user_id=user_id, session_id=session_id)
    after_serve(request, served, user_id, session_id)
    return _json(served)


@router.get(
    "/v1/items/{item_id}/bought-together",
    response_model=ServedList,
    responses=NOT_FOUND,
    summary="Frequently bought together",
)
def bought_together(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    item_id: ItemPath,
    user_id: UserQ = None,
    session_id: SessionQ = None,
    k: KQ = None,
) -> Response:
    _check_k(settings, k)
    served = engine.bought_together(item_id, k=k, user_id=user_id, session_id=session_id)
    after_serve(request, served, user_id, session_id)
    return _json(served)


@router.get("/v1/trending", response_model=ServedList, summary="What is hot now")
def trending(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    user_id: UserQ = None,
    session_id: SessionQ = None,
    k: KQ = None,
    category: Annotated[str | None, Query(max_length=500, description="category path prefix")] = None,
) -> Response:
    _check_k(settings, k)
    filters = {"category": category} if category else None
    served = engine.trending(k=k, user_id=user_id, session_id=session_id, filters=filters)
    after_serve(request, served, user_id, session_id)
    return _json(served)


@router.get("/v1/suggest", response_model=Suggestions, summary="Complete what the shopper is typing")
def suggest(
    engine: EngineDep,
    settings: SettingsDep,
    q: Annotated[
        str,
        Query(
            max_length=200,
            description="what has been typed so far ('' = popular searches)",
            examples=["cordl"],
        ),
    ] = "",
    k: Annotated[int, Query(ge=1, le=1000, description="at most this many suggestions")] = 8,
) -> Suggestions:
    _check_k(settings, k)
    found = engine.suggest(q, k=k)
    return Suggestions(
        q=q, suggestions=[SuggestionOut(text=s.text, source=s.source, score=round(s.score, 4)) for s in found]
    )


@router.get("/v1/items/{item_id}", response_model=Product, responses=NOT_FOUND, summary="One product")
def get_item(engine: EngineDep, item_id: ItemPath) -> Product:
    return engine.get_product(item_id)
