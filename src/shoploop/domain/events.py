"""Typed shopper events, modelled on metarank's item / user / ranking / interaction split.

Every list the engine serves is an `ImpressionEvent` with a `request_id`; clicks, carts
and purchases that follow carry that `request_id` back. That link is what makes unbiased
learning to rank, off-policy evaluation and A/B analysis possible downstream.

Positions are 1-based: position 1 is the top slot a shopper sees.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from shoploop.domain.products import ItemId

EventType = Literal[
    "search",
    "impression",
    "view",
    "click",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "rating",
    "dislike",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]

# Surfaces the engine serves lists on; free-form strings are allowed for shop-specific ones.
Surface = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_\-]*$")]
UserId = Annotated[str, Field(min_length=1, max_length=200)]


# The user id of lists served to shoppers who did not say who they are; no per-shopper
# state is kept under it.
ANONYMOUS_USER = "anonymous"


def new_event_id() -> str:
    """A 32-hex-digit id that sorts by creation time (UUIDv7-like layout).

    Ids made close in time sort close together, so the event log's primary-key index
    grows at its end instead of rewriting pages all over it (random ids made the SQLite
    insert rate fall as the log grew; see benchmarks/results/ingest.md).
    """
    millis = time.time_ns() // 1_000_000
    return f"{millis:012x}{secrets.token_hex(10)}"


class BaseEvent(BaseModel):
    """Fields every event carries. `event_id` makes re-sends idempotent."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    event_id: str = Field(default_factory=new_event_id, min_length=1, max_length=200)
    user_id: UserId
    session_id: str | None = Field(default=None, max_length=200)
    timestamp: AwareDatetime
    context: dict[str, Any] = Field(default_factory=dict)


def shopper_of(event: BaseEvent) -> str | None:
    """Who did it, for counting distinct shoppers: the user, else the anonymous session
    ("u:…" / "s:…"), None when neither is known."""
    if event.user_id and event.user_id != ANONYMOUS_USER:
        return f"u:{event.user_id}"
    return f"s:{event.session_id}" if event.session_id else None


class SearchEvent(BaseEvent):
    type: Literal["search"] = "search"
    query: str = Field(max_length=1000)
    request_id: str | None = Field(default=None, max_length=200)
    filters: dict[str, Any] = Field(default_factory=dict)
    n_results: int | None = Field(default=None, ge=0)


class ShownItem(BaseModel):
    """One slot of a served list."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: ItemId
    position: int = Field(ge=1)
    score: float | None = None
    # Probability that the logging policy put this item in this slot; None when the
    # policy was deterministic and did not say (treated as 1 by estimators).
    propensity: float | None = Field(default=None, gt=0, le=1)


class ImpressionEvent(BaseEvent):
    type: Literal["impression"] = "impression"
    request_id: str = Field(min_length=1, max_length=200)
    surface: Surface
    query: str | None = Field(default=None, max_length=1000)
    items: tuple[ShownItem, ...] = Field(min_length=1, max_length=1000)
    policy: str = Field(default="deterministic", max_length=100)
    model_version: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _positions_unique(self) -> ImpressionEvent:
        positions = [it.position for it in self.items]
        if len(set(positions)) != len(positions):
            raise ValueError("items: positions must be unique within one impression")
        return self


class _ItemEvent(BaseEvent):
    item_id: ItemId
    request_id: str | None = Field(default=None, max_length=200)


class ViewEvent(_ItemEvent):
    type: Literal["view"] = "view"


class ClickEvent(_ItemEvent):
    type: Literal["click"] = "click"
    position: int | None = Field(default=None, ge=1)


class AddToCartEvent(_ItemEvent):
    type: Literal["add_to_cart"] = "add_to_cart"
    quantity: int = Field(default=1, ge=1, le=10_000)
    price: float | None = Field(default=None, gt=0)


class RemoveFromCartEvent(_ItemEvent):
    type: Literal["remove_from_cart"] = "remove_from_cart"
    quantity: int = Field(default=1, ge=1, le=10_000)


class RatingEvent(_ItemEvent):
    type: Literal["rating"] = "rating"
    rating: int = Field(ge=1, le=5)


class DislikeEvent(_ItemEvent):
    type: Literal["dislike"] = "dislike"


class PurchaseLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: ItemId
    quantity: int = Field(default=1, ge=1, le=10_000)
    price: float = Field(gt=0, lt=1e9, description="unit price in major units")


class PurchaseEvent(BaseEvent):
    type: Literal["purchase"] = "purchase"
    order_id: str | None = Field(default=None, max_length=200)
    items: tuple[PurchaseLine, ...] = Field(min_length=1, max_length=1000)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    request_id: str | None = Field(default=None, max_length=200)

    @property
    def revenue(self) -> float:
        return sum(line.price * line.quantity for line in self.items)


Event = Annotated[
    SearchEvent
    | ImpressionEvent
    | ViewEvent
    | ClickEvent
    | AddToCartEvent
    | RemoveFromCartEvent
    | PurchaseEvent
    | RatingEvent
    | DislikeEvent,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

# Interactions that point back at a served list and carry a learning signal, with the
# graded gain the ranker uses (click < cart < purchase).
INTERACTION_GAIN: dict[str, int] = {"click": 1, "add_to_cart": 2, "purchase": 3}


def parse_event(data: dict[str, Any]) -> Event:
    """Validate a JSON-like dict into a typed event; raises pydantic.ValidationError."""
    return EVENT_ADAPTER.validate_python(data)


def event_to_dict(event: BaseEvent) -> dict[str, Any]:
    """JSON-ready dict, the same shape `parse_event` accepts."""
    return event.model_dump(mode="json")


def event_item_ids(event: BaseEvent) -> list[str]:
    """Every item id an event refers to (used to check ids against the catalog)."""
    if isinstance(event, PurchaseEvent):
        return [line.item_id for line in event.items]
    if isinstance(event, ImpressionEvent):
        return [it.item_id for it in event.items]
    item_id = event_item_id(event)
    return [item_id] if item_id else []


def event_item_id(event: BaseEvent) -> str | None:
    """The single item an item-level event is about (None for search/impression/purchase)."""
    return getattr(event, "item_id", None)


def event_request_id(event: BaseEvent) -> str | None:
    """The served list an event belongs to, if any."""
    return getattr(event, "request_id", None)
