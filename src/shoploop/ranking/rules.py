"""Merchandising rules: pin, boost, bury, hide and redirect, applied after ranking.

Merchandisers need to override the model for business reasons (a promotion, a recall,
a landing page), and they need to see that they did: every item a rule touches gets
the rule named in its explanation.

Precedence, from strongest to weakest (tested in tests/ranking/test_rules.py):
1. `redirect` — the first matching redirect (by priority) short-circuits the list.
2. `hide` — a hidden item is never shown, even if another rule pins it.
3. `pin` — pinned items take their positions; when two pins claim one position the
   higher priority wins and the other is placed at the next free position.
4. `boost` / `bury` — shift matching items' scores by `strength` times the list's score
   range (strength 1 = past every other item), then re-sort (stable, so ties keep the model's order).
Ties in priority are broken by rule id, so the outcome never depends on dict order.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shoploop.domain import Product
from shoploop.store.files import atomic_write_text

log = logging.getLogger(__name__)

RULES_FILENAME = "rules.json"  # in the shop home
RuleKind = Literal["pin", "boost", "bury", "hide", "redirect"]


class RuleScope(BaseModel):
    """Where a rule applies. Empty tuples mean "everywhere" for that dimension."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    surfaces: tuple[str, ...] = ()
    query_exact: tuple[str, ...] = ()  # compared after lower-casing and trimming
    query_contains: tuple[str, ...] = ()  # any of these terms as a whole word
    categories: tuple[str, ...] = ()  # the request's category context (filter or predicted intent)


class ItemMatch(BaseModel):
    """Which items a boost / bury / hide touches; every given condition must hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item_ids: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()  # matches any level of the item's category path
    brands: tuple[str, ...] = ()
    attributes: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_empty(self) -> ItemMatch:
        if not (self.item_ids or self.categories or self.brands or self.attributes):
            raise ValueError("match: give at least one of item_ids, categories, brands, attributes")
        return self

    def matches(self, item_id: str, product: Product | None) -> bool:
        if self.item_ids and item_id not in self.item_ids:
            return False
        if product is None:
            return not (self.categories or self.brands or self.attributes)
        if self.categories:
            path = {level.lower() for level in product.category_path}
            if not path & {c.lower() for c in self.categories}:
                return False
        if self.brands and (product.brand or "").lower() not in {b.lower() for b in self.brands}:
            return False
        return all(product.attributes.get(key) == value for key, value in self.attributes.items())


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rule_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12], min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    kind: RuleKind
    scope: RuleScope = Field(default_factory=RuleScope)
    match: ItemMatch | None = None  # boost / bury / hide
    item_id: str | None = None  # pin
    position: int | None = Field(default=None, ge=1, le=1000)  # pin
    strength: float = Field(default=0.5, gt=0, le=1)  # boost / bury, fraction of the score range
    redirect_url: str | None = Field(default=None, max_length=2000)
    priority: int = 0
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Rule:
        if self.kind == "pin" and (self.item_id is None or self.position is None):
            raise ValueError("pin rules need item_id and position")
        if self.kind in ("boost", "bury", "hide") and self.match is None:
            raise ValueError(f"{self.kind} rules need match")
        if self.kind == "redirect":
            if not self.redirect_url:
                raise ValueError("redirect rules need redirect_url")
            if not (self.scope.query_exact or self.scope.query_contains):
                raise ValueError("redirect rules need scope.query_exact or scope.query_contains")
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def active_at(self, now: datetime) -> bool:
        return (
            self.enabled
            and (self.start is None or now >= self.start)
            and (self.end is None or now < self.end)
        )


@dataclass(frozen=True)
class RuleContext:
    surface: str
    query: str | None = None
    categories: tuple[str, ...] = ()
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Candidate:
    """A ranked item on its way out; rules edit score and explanation in place.

    `detail` (optional) yields more explanation computed only when needed — for items that
    are shown, or when a learned ranker reads explanations as features; `full_explanation()`
    merges it in front of `explanation`."""

    item_id: str
    score: float
    explanation: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    detail: Callable[[], dict[str, Any]] | None = None

    def full_explanation(self) -> dict[str, Any]:
        if self.detail is not None:
            self.explanation = {**self.detail(), **self.explanation}
            self.detail = None
        return self.explanation


@dataclass
class RuleOutcome:
    items: list[Candidate]
    redirect: str | None
    applied: list[str]  # rule ids that changed something, in application order


def _query_words(query: str) -> set[str]:
    return set(query.lower().split())


def scope_matches(scope: RuleScope, ctx: RuleContext) -> bool:
    if scope.surfaces and ctx.surface not in scope.surfaces:
        return False
    query = (ctx.query or "").strip().lower()
    query_conditions = bool(scope.query_exact or scope.query_contains)
    if query_conditions:
        exact = query in {q.strip().lower() for q in scope.query_exact}
        words = _query_words(query)
        contains = any(
            term.strip().lower() in words
            or (" " in term.strip() and f" {term.strip().lower()} " in f" {query} ")
            for term in scope.query_contains
        )
        if not (exact or contains):
            return False
    if scope.categories:
        wanted = {c.lower() for c in scope.categories}
        if not wanted & {c.lower() for c in ctx.categories}:
            return False
    return True


def _note(candidate: Candidate, rule: Rule, effect: str) -> None:
    candidate.explanation.setdefault("rules", []).append(
        {"rule_id": rule.rule_id, "name": rule.name, "kind": rule.kind, "effect": effect}
    )


def apply_rules(
    items: Sequence[Candidate],
    rules: Sequence[Rule],
    ctx: RuleContext,
    products: Mapping[str, Product],
) -> RuleOutcome:
    """Apply the active, in-scope rules to a ranked list (best first).

    `products` must hold metadata for the listed items and for every pinned item id;
    a pinned item missing from it (deleted from the catalog) is skipped.
    """
    live = sorted(
        (r for r in rules if r.active_at(ctx.now) and scope_matches(r.scope, ctx)),
        key=lambda r: (-r.priority, r.rule_id),
    )
    if not live:  # the common case: nothing to apply, so nothing to copy (a hot path)
        return RuleOutcome(items=list(items), redirect=None, applied=[])
    applied: list[str] = []
    for rule in live:
        if rule.kind == "redirect":
            return RuleOutcome(items=[], redirect=rule.redirect_url, applied=[rule.rule_id])

    out = [Candidate(c.item_id, c.score, dict(c.explanation), list(c.reasons), c.detail) for c in items]

    hidden: set[str] = set()
    for rule in (r for r in live if r.kind == "hide"):
        assert rule.match is not None
        hits = {c.item_id for c in out if rule.match.matches(c.item_id, products.get(c.item_id))}
        # A hide by item id also blocks pins of that id that are not in the list yet.
        hits |= set(rule.match.item_ids) if not (rule.match.categories or rule.match.brands) else set()
        if hits - hidden:
            applied.append(rule.rule_id)
        hidden |= hits
    out = [c for c in out if c.item_id not in hidden]

    shifts = [r for r in live if r.kind in ("boost", "bury")]
    if shifts and out:
        scores = [c.score for c in out]
        # The tiny margin makes strength 1 move matching items strictly past every other one.
        span = ((max(scores) - min(scores)) or 1.0) * (1 + 1e-6)
        for rule in shifts:
            assert rule.match is not None
            sign = 1.0 if rule.kind == "boost" else -1.0
            touched = False
            for c in out:
                if rule.match.matches(c.item_id, products.get(c.item_id)):
                    c.score += sign * rule.strength * span
                    _note(c, rule, f"{rule.kind} {rule.strength:+.2f}x range")
                    touched = True
            if touched:
                applied.append(rule.rule_id)
        out.sort(key=lambda c: -c.score)  # stable: equal scores keep the model's order

    pins = [r for r in live if r.kind == "pin" and r.item_id not in hidden and r.item_id in products]
    if pins:
        by_id = {c.item_id: c for c in out}
        pinned: dict[int, Candidate] = {}
        for rule in pins:  # already in precedence order
            assert rule.item_id is not None and rule.position is not None
            if any(c.item_id == rule.item_id for c in pinned.values()):
                continue  # a stronger pin already placed this item
            candidate = by_id.get(rule.item_id) or Candidate(rule.item_id, score=float("nan"))
            slot = rule.position
            while slot in pinned:
                slot += 1
            pinned[slot] = candidate
            _note(candidate, rule, f"pinned to position {slot}")
            applied.append(rule.rule_id)
        rest = iter([c for c in out if c.item_id not in {p.item_id for p in pinned.values()}])
        merged: list[Candidate] = []
        total = len(out) + sum(1 for p in pinned.values() if p.item_id not in by_id)
        for position in range(1, max(total, max(pinned)) + 1):
            if position in pinned:
                merged.append(pinned[position])
            else:
                nxt = next(rest, None)
                if nxt is not None:
                    merged.append(nxt)
        merged.extend(rest)
        out = merged
    return RuleOutcome(items=out, redirect=None, applied=applied)


class RuleBook:
    """Rules kept in one JSON file, replaced atomically so a crash never half-writes it.

    Reads go to an in-memory copy; every change writes the file and swaps the copy, so
    rules take effect on the next request without a restart. Another process may write the
    file too (`shoploop import algolia`, a second server on the home): `reload` picks that up,
    and every change re-reads a file changed meanwhile first, so it adds to what the other
    process wrote instead of writing over it.
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._rules: dict[str, Rule] = {}
        self._stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read
        with self._lock:
            self._reload_locked()

    def reload(self) -> bool:
        """Re-read the file if another process changed it; True when the rules changed. A
        file that does not parse is logged and left unapplied (the rules in memory stay)."""
        with self._lock:
            return self._reload_locked()

    def _reload_locked(self) -> bool:
        if self._path is None:
            return False
        try:
            st = self._path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8")) if stamp is not None else []
            rules = {r["rule_id"]: Rule.model_validate(r) for r in raw}
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("%s not applied, the rules in memory stay: %s", self._path, err)
            return False
        changed = rules != self._rules
        self._rules = rules
        return changed

    def all(self) -> list[Rule]:
        return sorted(self._rules.values(), key=lambda r: (-r.priority, r.rule_id))

    def get(self, rule_id: str) -> Rule | None:
        return self._rules.get(rule_id)

    def put(self, rule: Rule) -> Rule:
        with self._lock:
            self._reload_locked()
            updated = dict(self._rules)
            updated[rule.rule_id] = rule
            self._write(updated)
            self._rules = updated
        return rule

    def delete(self, rule_id: str) -> bool:
        with self._lock:
            self._reload_locked()
            if rule_id not in self._rules:
                return False
            updated = {k: v for k, v in self._rules.items() if k != rule_id}
            self._write(updated)
            self._rules = updated
            return True

    def _write(self, rules: Mapping[str, Rule]) -> None:
        if self._path is None:
            return
        atomic_write_text(
            self._path, json.dumps([r.model_dump(mode="json") for r in rules.values()], indent=1)
        )
        st = self._path.stat()
        self._stamp = (st.st_mtime_ns, st.st_size)
