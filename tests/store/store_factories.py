"""Small builders for typed events and products used by the store tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from shoploop.domain import (
    AddToCartEvent,
    ClickEvent,
    ImpressionEvent,
    Product,
    PurchaseEvent,
    ShownItem,
    ViewEvent,
)


def product(item_id: str, title: str | None = None, **kw) -> Product:
    return Product(item_id=item_id, title=title or f"Product {item_id}", **kw)


def view(eid: str, user: str, when: datetime, item: str = "i1", **kw) -> ViewEvent:
    return ViewEvent(event_id=eid, user_id=user, timestamp=when, item_id=item, **kw)


def click(eid: str, user: str, when: datetime, item: str = "i1", request_id: str | None = None) -> ClickEvent:
    return ClickEvent(
        event_id=eid, user_id=user, timestamp=when, item_id=item, request_id=request_id, position=1
    )


def cart(eid: str, user: str, when: datetime, item: str = "i1") -> AddToCartEvent:
    return AddToCartEvent(event_id=eid, user_id=user, timestamp=when, item_id=item, quantity=2, price=9.5)


def purchase(eid: str, user: str, when: datetime) -> PurchaseEvent:
    return PurchaseEvent(
        event_id=eid, user_id=user, timestamp=when, items=[{"item_id": "i1", "quantity": 1, "price": 3.0}]
    )


def impression(eid: str, user: str, when: datetime, request_id: str, items=("i1", "i2")) -> ImpressionEvent:
    return ImpressionEvent(
        event_id=eid,
        user_id=user,
        timestamp=when,
        request_id=request_id,
        surface="search",
        query="drill",
        items=tuple(
            ShownItem(item_id=i, position=p, score=1.0 / p, propensity=0.5) for p, i in enumerate(items, 1)
        ),
    )


def minutes(t0: datetime, n: float) -> datetime:
    return t0 + timedelta(minutes=n)


def small_shop(home: Path, model_src: Path, t0: datetime, *, users: int = 3) -> Path:
    """A real SQLite shop home: five products, twelve views by `users` shoppers from `t0`, and
    one active ranker version whose files come from `model_src` (created here)."""
    from shoploop.store.home import open_stores

    model_src.mkdir()
    (model_src / "weights.json").write_text('{"w": [1, 2, 3]}')
    with open_stores(home) as stores:
        stores.catalog.upsert([product(f"i{n}") for n in range(5)])
        stores.events.append(
            [view(f"e{n}", f"u{n % users}", minutes(t0, n), item=f"i{n % 5}") for n in range(12)]
        )
        mv = stores.registry.register("ranker", model_src, metrics={"ndcg": 0.4})
        stores.registry.promote("ranker", mv.version, reason="first ranker")
    return home
