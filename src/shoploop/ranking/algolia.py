"""Bring a shop's search tuning over from Algolia: its synonyms and its query rules.

(Merchandising configuration, so it lives beside the rules it produces; the synonyms come out
as lines of text for the retrieval layer's synonyms file, which the caller checks and saves.)

A merchandiser who leaves Algolia has years of tuning in two exports from its dashboard (or
API): the index's synonyms and its rules, each a JSON array (JSON lines are read too). This
module converts both into shoploop's own forms, and says what has no counterpart instead of
dropping it quietly.

Synonyms (record `type`) → lines of the shop's synonyms file (the Solr/Elasticsearch format):

* `synonym` {synonyms} → "a, b, c" (each finds the others);
* `oneWaySynonym` {input, synonyms} → "input => input, s1, s2" (input also finds them);
* `altCorrection1` / `altCorrection2` {word, corrections} → "word => word, c1" (the
  corrections are found for the word; Algolia ranks them lower, shoploop as expansions);
* `placeholder` → not converted (shoploop has no placeholder tokens).

Rules → `Rule`s (one Algolia rule may become several: a pin per promoted record):

* conditions (any of them matches): `is` → exact query, `contains` → query contains; a
  `startsWith` / `endsWith` pattern is taken as "contains" (broader; reported); a
  condition with a context, filters or a `{facet:...}` placeholder has no counterpart, and a
  rule whose every condition is such is not converted; no conditions → every search;
* `consequence.promote` → pin rules at position + 1 (Algolia counts from 0);
* `consequence.hide` → one hide rule; a redirect (`consequence.params.renderingContent.redirect.url`
  or `userData.redirect`) → a redirect rule;
* `consequence.params.optionalFilters` "attr:value" → boost ("attr:-value" → bury): `brand`
  matches brands, `category` / `categories` / `product_type` match categories, any other
  attribute an attribute; hard `filters`, query edits and the rest are reported as not converted;
* `validity` (the first range) → start/end; `enabled`; `description` → the rule's name.

Rule ids are `algolia-<objectID>-<n>`, so importing the same export again replaces those
rules instead of adding copies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shoploop.ranking.rules import ItemMatch, Rule, RuleScope

RULE_ID_PREFIX = "algolia-"
BLOCK_START = "# >>> imported from Algolia"
BLOCK_END = "# <<< Algolia"
_CATEGORY_ATTRS = frozenset({"category", "categories", "product_type"})
_UNSAFE_PHRASE = re.compile(r"[,#\n]|=>")


class AlgoliaExportError(ValueError):
    """The export as a whole cannot be read (not JSON, not a list of objects)."""


@dataclass
class Conversion:
    """What an export became: converted items, and one line per thing left out, with why."""

    converted: int = 0
    notes: list[str] = field(default_factory=list)

    def note(self, object_id: str, text: str) -> None:
        self.notes.append(f"{object_id}: {text}")


def read_export(path: Path) -> list[dict[str, Any]]:
    """An Algolia export: a JSON array of objects, or JSON lines."""
    text = Path(path).read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise AlgoliaExportError(f"{Path(path).name}: not JSON or JSON lines: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("hits"), list):  # an API search response
        data = data["hits"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise AlgoliaExportError(f"{Path(path).name}: expected a JSON array of objects")
    return data


# ---------------------------------------------------------------------------- synonyms


def _phrases(values: Any) -> list[str]:
    if not isinstance(values, list):
        return []
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def synonym_lines(
    records: Iterable[Mapping[str, Any]],
    conversion: Conversion,
    check: Callable[[str], object] | None = None,
) -> list[str]:
    """Lines for the shop's synonyms file, one per convertible record, in export order. With
    `check` (the synonyms file's own line checker, which raises ValueError), a line it refuses —
    say, phrases of punctuation only — is noted and left out instead of failing the whole file."""
    lines: list[str] = []
    for record in records:
        object_id = str(record.get("objectID", "?"))
        kind = record.get("type")
        if kind == "synonym":
            lhs, rhs = None, _phrases(record.get("synonyms"))
        elif kind == "oneWaySynonym":
            lhs, rhs = record.get("input"), _phrases(record.get("synonyms"))
        elif kind in ("altCorrection1", "altCorrection2"):
            lhs, rhs = record.get("word"), _phrases(record.get("corrections"))
        else:
            conversion.note(object_id, f"synonym type {kind!r} has no counterpart; not converted")
            continue
        words = rhs + ([lhs] if isinstance(lhs, str) else [])
        if any(_UNSAFE_PHRASE.search(w) for w in words):
            conversion.note(object_id, "a phrase holds ',', '#' or '=>'; not converted")
            continue
        if kind == "synonym":
            if len(rhs) < 2:
                conversion.note(object_id, "fewer than two synonyms; nothing to convert")
                continue
            lines.append(", ".join(rhs))
        else:
            if not isinstance(lhs, str) or not lhs.strip() or not rhs:
                conversion.note(object_id, f"{kind} without its word or its synonyms; not converted")
                continue
            lines.append(f"{lhs.strip()} => {', '.join([lhs.strip(), *rhs])}")
        if check is not None:
            try:
                check(lines[-1])
            except ValueError as err:
                lines.pop()
                conversion.note(object_id, f"not a working rule ({err}); not converted")
                continue
        conversion.converted += 1
    return lines


def merge_block(existing: str, lines: list[str], source: str, when: datetime) -> str:
    """The shop's synonyms text with the imported block replaced (or appended): re-importing
    an export replaces what the last import wrote and leaves the shop's own lines alone."""
    kept: list[str] = []
    inside = False
    for line in existing.splitlines():
        if line.startswith(BLOCK_START):
            inside = True
        elif inside and line.startswith(BLOCK_END):
            inside = False
        elif not inside:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    block = [
        f"{BLOCK_START} ({source}, {when:%Y-%m-%d}); importing again replaces this block",
        *lines,
        BLOCK_END,
    ]
    return "\n".join([*kept, *([""] if kept else []), *block]) + "\n"


# ------------------------------------------------------------------------------- rules


def _scope(record: Mapping[str, Any], object_id: str, conversion: Conversion) -> RuleScope | None:
    conditions = record.get("conditions")
    if conditions is None and isinstance(record.get("condition"), dict):  # the older single form
        conditions = [record["condition"]]
    if not conditions:
        return RuleScope(surfaces=("search",))
    exact: list[str] = []
    contains: list[str] = []
    for condition in conditions:
        pattern = (condition.get("pattern") or "").strip()
        if condition.get("context") or condition.get("filters"):
            conversion.note(object_id, "a condition on a context or filters has no counterpart; skipped")
            continue
        if not pattern or "{facet:" in pattern:
            conversion.note(object_id, f"condition pattern {pattern!r} has no counterpart; skipped")
            continue
        anchoring = condition.get("anchoring", "contains")
        if anchoring == "is":
            exact.append(pattern.lower())
        else:
            if anchoring != "contains":
                conversion.note(object_id, f"'{anchoring}' {pattern!r} taken as 'contains' (broader)")
            contains.append(pattern.lower())
    if not exact and not contains:
        return None
    return RuleScope(surfaces=("search",), query_exact=tuple(exact), query_contains=tuple(contains))


def _when(value: Any) -> datetime | None:
    return datetime.fromtimestamp(float(value), UTC) if isinstance(value, int | float) else None


def _filter_match(text: str) -> tuple[ItemMatch, bool] | None:
    """'brand:Apple' → (match, negative=False); 'brand:-Apple' → negative; None if not simple."""
    text = re.sub(r"<score=\d+>$", "", text.strip())
    name, sep, value = text.partition(":")
    name, value = name.strip().strip('"'), value.strip().strip('"')
    if not sep or not name or not value:
        return None
    negative = value.startswith("-")
    value = value.lstrip("-").strip().strip('"')
    if not value:
        return None
    key = name.lower()
    if key == "brand":
        return ItemMatch(brands=(value,)), negative
    if key in _CATEGORY_ATTRS or key.startswith("hierarchicalcategories"):
        return ItemMatch(categories=(value.split(">")[-1].strip(),)), negative
    if key in ("objectid", "item_id"):
        return ItemMatch(item_ids=(value,)), negative
    return ItemMatch(attributes={name: value}), negative


def rule_id_prefix(object_id: str) -> str:
    """Every rule converted from Algolia rule `object_id` has an id starting with this."""
    return f"{RULE_ID_PREFIX}{object_id}"[:58] + "-"


def rules_from_record(record: Mapping[str, Any], conversion: Conversion) -> list[Rule]:
    """The shoploop rules one Algolia rule becomes (none when nothing converts)."""
    object_id = str(record.get("objectID") or "")
    if not object_id:
        conversion.note("?", "a rule without objectID; not converted")
        return []
    scope = _scope(record, object_id, conversion)
    if scope is None:
        conversion.note(object_id, "no condition has a counterpart; rule not converted")
        return []
    consequence = record.get("consequence") or {}
    params = consequence.get("params") or {}
    validity = record.get("validity") or []
    first = validity[0] if validity and isinstance(validity[0], dict) else {}
    if len(validity) > 1:
        conversion.note(object_id, f"{len(validity)} validity ranges; only the first is kept")
    common: dict[str, Any] = {
        "name": (record.get("description") or f"Algolia rule {object_id}")[:200],
        "scope": scope,
        "start": _when(first.get("from")),
        "end": _when(first.get("until")),
        "enabled": bool(record.get("enabled", True)),
    }
    specs: list[dict[str, Any]] = []
    for promoted in consequence.get("promote") or []:
        ids = promoted.get("objectIDs") or ([promoted["objectID"]] if promoted.get("objectID") else [])
        base = int(promoted.get("position", 0))
        specs += [{"kind": "pin", "item_id": str(i), "position": base + n + 1} for n, i in enumerate(ids)]
    hidden = [str(h["objectID"]) for h in consequence.get("hide") or [] if h.get("objectID")]
    if hidden:
        specs.append({"kind": "hide", "match": ItemMatch(item_ids=tuple(hidden))})
    redirect = ((params.get("renderingContent") or {}).get("redirect") or {}).get("url")
    user_data = consequence.get("userData")
    if not redirect and isinstance(user_data, dict) and isinstance(user_data.get("redirect"), str):
        redirect = user_data["redirect"]
    if redirect:
        specs.append({"kind": "redirect", "redirect_url": redirect})
    optional = params.get("optionalFilters") or []
    for item in [optional] if isinstance(optional, str) else optional:
        parsed = _filter_match(item) if isinstance(item, str) else None
        if parsed is None:
            conversion.note(object_id, f"optional filter {item!r} is not 'attribute:value'; skipped")
            continue
        match, negative = parsed
        specs.append({"kind": "bury" if negative else "boost", "match": match})
    for key in sorted(set(params) - {"renderingContent", "optionalFilters"}):
        conversion.note(object_id, f"consequence '{key}' has no counterpart; skipped")
    if consequence.get("filterPromotes"):
        conversion.note(object_id, "filterPromotes ignored: pinned items are shown whatever the filters")
    rules: list[Rule] = []
    for n, spec in enumerate(specs):
        rule_id = rule_id_prefix(object_id) + str(n)
        try:
            rules.append(Rule(rule_id=rule_id, **common, **spec))
        except ValidationError as err:
            problem = err.errors()[0]
            where = ".".join(str(p) for p in problem["loc"]) or spec["kind"]
            conversion.note(object_id, f"{spec['kind']}: {where}: {problem['msg']}; not converted")
    if not rules and not specs:
        conversion.note(object_id, "no consequence has a counterpart; rule not converted")
    conversion.converted += bool(rules)
    return rules


def rules_from_export(
    records: Iterable[Mapping[str, Any]], conversion: Conversion
) -> Iterator[tuple[str, list[Rule]]]:
    """(objectID, its rules) per Algolia rule, in export order."""
    for record in records:
        yield str(record.get("objectID") or ""), rules_from_record(record, conversion)
