"""The product record every layer agrees on.

Products are validated once, at the edge (ingestion or API), so that every later layer
can trust the fields. Validation errors name the field, which the ingest quarantine
and the HTTP API both surface verbatim.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

ItemId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]
AttributeValue = str | int | float | bool


class Product(BaseModel):
    """One sellable item of the catalog.

    `category_path` runs from the broadest category to the narrowest, e.g.
    `("Tools", "Power Tools", "Drills")`. `price` is in major units of `currency`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    item_id: ItemId
    title: str = Field(min_length=1, max_length=1000)
    description: str = Field(default="", max_length=20_000)
    category_path: tuple[str, ...] = ()
    brand: str | None = Field(default=None, max_length=200)
    price: float | None = Field(default=None, gt=0, lt=1e9)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    in_stock: bool = True
    updated_at: AwareDatetime | None = None

    @field_validator("category_path", mode="before")
    @classmethod
    def _split_path(cls, value: object) -> object:
        # CSV files carry the path as "A > B > C"; accept that as well as a list.
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(">") if part.strip())
        return value

    @field_validator("category_path")
    @classmethod
    def _no_empty_levels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(part.strip() for part in value)
        if any(not part for part in cleaned):
            raise ValueError("category levels must be non-empty")
        return cleaned

    @field_validator("brand", mode="before")
    @classmethod
    def _blank_brand_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @property
    def category(self) -> str | None:
        """The narrowest category, or None when the product has no category."""
        return self.category_path[-1] if self.category_path else None

    @property
    def top_category(self) -> str | None:
        return self.category_path[0] if self.category_path else None

    def text(self) -> str:
        """The text the encoders and BM25 see: title, category path, brand, description."""
        parts = [self.title]
        if self.category_path:
            parts.append(" > ".join(self.category_path))
        if self.brand:
            parts.append(self.brand)
        if self.description:
            parts.append(self.description)
        return ". ".join(parts)

    def touched(self, when: datetime) -> Product:
        return self.model_copy(update={"updated_at": when})
