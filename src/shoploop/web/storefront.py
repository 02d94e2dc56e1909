"""The demo storefront: home, search, product, cart — server-rendered from the engine.

Pages are rendered on the server from the same engine calls as the API (so every list is
logged as an impression with a `request_id`). What the shopper then does is sent by
`static/shop.js` to the public `POST /v1/events` with an *events-only* key, exactly as a
shop's own front end would integrate: the browser test therefore exercises the real
intake path, and the key in the page can do nothing but submit events.
Product links carry `rid` (request id), `pos` (1-based position) and `src` (surface), so
the product page can report the click against the list it came from.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from html import escape
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from shoploop.api.routers.serving import after_serve
from shoploop.domain.served import ServedList
from shoploop.engine import Engine, InvalidRequest, NotFound
from shoploop.engine.browse import ListOrder

router = APIRouter(include_in_schema=False)
USER_COOKIE = "sl_user"
SESSION_COOKIE = "sl_session"
DEMO_SHOPPERS = 8


def _shoppers(request: Request, engine: Engine) -> list[str]:
    """A few real shoppers from the store (buyers first), found once and cached."""
    cached = getattr(request.app.state, "demo_shoppers", None)
    if cached is not None:
        return cached
    found: list[str] = []
    for event in engine.stores.events.scan(types=["purchase"], exclude_flagged=True):
        if event.user_id not in found:
            found.append(event.user_id)
        if len(found) >= DEMO_SHOPPERS:
            break
    request.app.state.demo_shoppers = found
    return found


def _identity(request: Request) -> tuple[str, str, bool]:
    user = request.cookies.get(USER_COOKIE)
    session = request.cookies.get(SESSION_COOKIE)
    fresh = user is None or session is None
    return user or f"visitor-{secrets.token_hex(4)}", session or f"s-{secrets.token_hex(6)}", fresh


def _page(request: Request, template: str, context: dict[str, Any]) -> Response:
    engine: Engine = request.app.state.engine
    user, session, fresh = context["user_id"], context["session_id"], context.pop("_fresh", False)
    base = {
        "request": request,
        "events_key": request.app.state.settings.storefront_key or "",
        "shoppers": _shoppers(request, engine),
        "model_version": engine.model_version,
    }
    response = request.app.state.templates.TemplateResponse(request, template, {**base, **context})
    if fresh:
        # Lax (not Strict) so following a link from elsewhere keeps the demo shopper.
        response.set_cookie(USER_COOKIE, user, max_age=30 * 86400, samesite="lax")
        response.set_cookie(SESSION_COOKIE, session, max_age=4 * 3600, samesite="lax")
    return response


def _serve(request: Request, served: ServedList, user: str, session: str) -> ServedList:
    after_serve(request, served, user, session)
    return served


def _link(item_id: str, served: ServedList, position: int) -> str:
    return f"/product/{item_id}?" + urlencode(
        {"rid": served.request_id, "pos": position, "src": served.surface}
    )


def _cards(served: ServedList | None) -> list[dict[str, Any]]:
    if served is None:
        return []
    return [
        {
            "item": item,
            "href": _link(item.item_id, served, item.position),
            "rid": served.request_id,
            "rules": [r["name"] for r in item.explanation.get("rules", [])],
        }
        for item in served.items
    ]


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    user, session, fresh = _identity(request)
    recs = _serve(request, engine.recommend(user, session_id=session, k=12), user, session)
    trend = _serve(request, engine.trending(k=8, user_id=user, session_id=session), user, session)
    return _page(
        request,
        "home.html",
        {
            "user_id": user,
            "session_id": session,
            "_fresh": fresh,
            "recs": recs,
            "rec_cards": _cards(recs),
            "trending": trend,
            "trend_cards": _cards(trend),
            "personal": bool(recs.items) and not recs.items[0].reasons[0].startswith(("trending", "new in")),
            "categories": [
                {"name": name, "n": n, "href": "/category?" + urlencode({"path": name})}
                for name, n in engine.top_categories().items()
            ],
        },
    )


@router.get("/suggest")
def suggest_json(request: Request, q: Annotated[str, Query(max_length=200)] = "") -> Response:
    """Autocomplete for the search box (shop.js fills its datalist as the shopper types)."""
    engine: Engine = request.app.state.engine
    found = engine.suggest(q, k=8)
    return JSONResponse({"q": q, "suggestions": [s.text for s in found]})


SORT_LABELS = {
    "relevance": "Best match",
    "price_asc": "Price: low to high",
    "price_desc": "Price: high to low",
}


def _message_page(status: int, message: str) -> HTMLResponse:
    """A bare page saying what went wrong, with the way back (the message is escaped)."""
    body = f"<h1>{escape(message)}</h1><p><a href='/'>back to the shop</a></p>"
    return HTMLResponse(body, status_code=status)


SortParam = Annotated[ListOrder, Query()]


def _listing_params(base: dict[str, str | None], brands: list[str], sort: str) -> str:
    """A listing link's query string: `base` (query or category path), the ticked brands and
    the order (the default order left out, so plain links stay plain)."""
    params = [(k, v) for k, v in base.items() if v]
    params.extend(("brand", b) for b in brands)
    if sort != "relevance":
        params.append(("sort", sort))
    return urlencode(params)


def _ticked(brand: list[str] | None) -> list[str]:
    """Ticked brands in order, blanks and repeats dropped (the engine refuses too many, which the
    page shows as its error)."""
    return list(dict.fromkeys(b for b in (brand or []) if b.strip()))


def _brand_links(
    counts: dict[str, int], brands: list[str], href: Callable[[list[str]], str]
) -> list[dict[str, Any]]:
    """The brand facet as links that tick a brand on or off; the counts say what each would add."""
    links = []
    for value, n in sorted(counts.items(), key=lambda kv: -kv[1])[:12]:
        ticked = value in brands
        picked = [b for b in brands if b != value] if ticked else [*brands, value]
        links.append({"value": value, "n": n, "ticked": ticked, "href": href(picked)})
    return links


def _value_links(counts: dict[str, int], href: Callable[[str], str]) -> list[dict[str, Any]]:
    """A facet whose value replaces the current one (a category), most frequent first."""
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:12]
    return [{"value": value, "n": n, "ticked": False, "href": href(value)} for value, n in ranked]


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    q: Annotated[str, Query(max_length=200)] = "",
    category: Annotated[str | None, Query(max_length=500)] = None,
    brand: Annotated[list[str] | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=50)] = 1,
    sort: SortParam = "relevance",
) -> Response:
    engine: Engine = request.app.state.engine
    user, session, fresh = _identity(request)
    served = None
    error = None
    brands = _ticked(brand)
    if q.strip():
        try:
            served = engine.search(
                q,
                user_id=user,
                session_id=session,
                filters={"category": category, "brand": brands or None},
                k=12,
                page=page,
                sort=sort,
            )
        except InvalidRequest as err:
            error = err.reason
    if served is not None and served.redirect:
        return RedirectResponse(served.redirect, status_code=303)
    if served is not None:
        _serve(request, served, user, session)
    understood = (served.understood_query or {}) if served else {}
    corrected = understood.get("corrected")
    facets = served.facets if served else {}
    facet_links = {}
    if "category" in facets:
        facet_links["category"] = _value_links(
            facets["category"], lambda v: "/search?" + _listing_params({"q": q, "category": v}, brands, sort)
        )
    if "brand" in facets:
        facet_links["brand"] = _brand_links(
            facets["brand"],
            brands,
            lambda picked: "/search?" + _listing_params({"q": q, "category": category}, picked, sort),
        )
    return _page(
        request,
        "search.html",
        {
            "user_id": user,
            "session_id": session,
            "_fresh": fresh,
            "q": q,
            "category": category,
            "brands": brands,
            "page": page,
            "sort": sort,
            "sorts": SORT_LABELS,
            # the pager keeps all of it
            "page_query": _listing_params({"q": q, "category": category}, brands, sort),
            "served": served,
            "cards": _cards(served),
            "corrected": corrected if corrected and corrected != understood.get("normalized") else None,
            "facets": facet_links,
            "other_facets": {k: v for k, v in facets.items() if k not in facet_links},
            "clear_href": "/search?" + urlencode({"q": q}),
            "error": error,
        },
    )


@router.get("/category", response_class=HTMLResponse)
def category_page(
    request: Request,
    path: Annotated[str, Query(min_length=1, max_length=500)],
    brand: Annotated[list[str] | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=50)] = 1,
    sort: SortParam = "relevance",
) -> Response:
    """A category page: the category's products featured for the shopper, or by price."""
    engine: Engine = request.app.state.engine
    user, session, fresh = _identity(request)
    brands = _ticked(brand)
    try:
        served = engine.browse(
            path,
            user_id=user,
            session_id=session,
            filters={"brand": brands or None},
            k=12,
            page=page,
            sort=sort,
        )
    except NotFound:
        return _message_page(404, f"No products in the category “{path}”.")
    except InvalidRequest as err:
        return _message_page(422, f"{err.field}: {err.reason}")
    _serve(request, served, user, session)
    parts = [part.strip() for part in path.split(">")]
    crumbs = [
        {"name": name, "href": "/category?" + urlencode({"path": " > ".join(parts[: i + 1])})}
        for i, name in enumerate(parts)
    ]
    here = " > ".join(parts)
    # deeper categories than this one, as links to their own pages
    deeper = {p: n for p, n in served.facets.get("category_path", {}).items() if p != here}
    facet_links = {}
    if deeper:
        facet_links["category_path"] = _value_links(
            deeper, lambda v: "/category?" + _listing_params({"path": v}, brands, sort)
        )
    facet_links["brand"] = _brand_links(
        served.facets.get("brand", {}),
        brands,
        lambda picked: "/category?" + _listing_params({"path": here}, picked, sort),
    )
    return _page(
        request,
        "category.html",
        {
            "user_id": user,
            "session_id": session,
            "_fresh": fresh,
            "path": here,
            "crumbs": crumbs,
            "brands": brands,
            "page": page,
            "sort": sort,
            "sorts": {**SORT_LABELS, "relevance": "Featured"},
            "page_query": _listing_params({"path": here}, brands, sort),
            "served": served,
            "cards": _cards(served),
            "facets": facet_links,
            "other_facets": {
                k: v for k, v in served.facets.items() if k not in ("category", "category_path", "brand")
            },
            "clear_href": "/category?" + urlencode({"path": here}),
            "error": None,
        },
    )


@router.get("/product/{item_id}", response_class=HTMLResponse)
def product_page(
    request: Request,
    item_id: str,
    rid: Annotated[str | None, Query(max_length=200)] = None,
    pos: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    src: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    engine: Engine = request.app.state.engine
    user, session, fresh = _identity(request)
    try:
        product = engine.get_product(item_id)
    except NotFound:
        return _message_page(404, "Not found")
    similar = _serve(request, engine.similar(item_id, k=6, user_id=user, session_id=session), user, session)
    together = _serve(
        request, engine.bought_together(item_id, k=6, user_id=user, session_id=session), user, session
    )
    return _page(
        request,
        "product.html",
        {
            "user_id": user,
            "session_id": session,
            "_fresh": fresh,
            "product": product,
            "rid": rid or "",
            "pos": pos or "",
            "src": src or "",
            "similar_cards": _cards(similar),
            "together_cards": _cards(together),
        },
    )


@router.get("/cart", response_class=HTMLResponse)
def cart_page(request: Request) -> Response:
    user, session, fresh = _identity(request)
    return _page(request, "cart.html", {"user_id": user, "session_id": session, "_fresh": fresh})


@router.get("/shopper")
def switch_shopper(
    request: Request,
    user_id: Annotated[str, Query(min_length=1, max_length=200)],
    next: Annotated[str, Query(max_length=500)] = "/",
) -> Response:
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(USER_COOKIE, user_id.strip(), max_age=30 * 86400, samesite="lax")
    # A new shopper starts a new session (a shared session would mix two people's journeys).
    response.set_cookie(SESSION_COOKIE, f"s-{secrets.token_hex(6)}", max_age=4 * 3600, samesite="lax")
    return response
