"""Events -> per-user sequences, matrices and purchase baskets."""

from __future__ import annotations

from datetime import timedelta

from shoploop.domain.events import (
    AddToCartEvent,
    DislikeEvent,
    PurchaseEvent,
    PurchaseLine,
    SearchEvent,
    ViewEvent,
)
from shoploop.domain.idmap import IdMap
from shoploop.recommend.interactions import build_sequences, interaction_matrix, purchase_baskets


def test_sequences_sorted_by_time_deduped_and_typed(t0) -> None:
    items = IdMap(["a", "b", "c"])
    events = [
        ViewEvent(user_id="u1", item_id="b", timestamp=t0 + timedelta(minutes=2)),
        ViewEvent(user_id="u1", item_id="a", timestamp=t0),
        AddToCartEvent(user_id="u1", item_id="b", timestamp=t0 + timedelta(minutes=3)),
        SearchEvent(user_id="u1", query="x", timestamp=t0),
        DislikeEvent(user_id="u1", item_id="c", timestamp=t0),
        ViewEvent(user_id="u1", item_id="zzz", timestamp=t0),  # not in the catalog map
        PurchaseEvent(
            user_id="u2",
            timestamp=t0,
            items=(PurchaseLine(item_id="a", price=1.0), PurchaseLine(item_id="c", price=2.0)),
        ),
        PurchaseEvent(
            user_id="u2", timestamp=t0 + timedelta(days=2), items=(PurchaseLine(item_id="b", price=1.0),)
        ),
    ]
    us = build_sequences(events, items)
    assert us.history("u1") == [1, 2]  # a, then b (view + cart collapse into one step)
    assert us.event_types[us.users.index("u1") - 1] == ["view", "add_to_cart"]
    assert us.history("nobody") == []
    assert purchase_baskets(us) == [[1, 3], [2]]
    m = interaction_matrix(us.sequences, us.n_items)
    assert m.shape == (2, 4)
    assert m[us.users.index("u2") - 1].toarray().tolist() == [[0, 1, 1, 1]]


def test_grow_items_adds_unknown_ids(t0) -> None:
    items = IdMap()
    us = build_sequences([ViewEvent(user_id="u", item_id="new", timestamp=t0)], items, grow_items=True)
    assert us.history("u") == [1]
    assert items.external(1) == "new"
