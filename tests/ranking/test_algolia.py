"""Algolia synonyms and rules exports converted to shoploop's synonyms file and rules, and
`shoploop import algolia` end to end (re-importing replaces, the shop's own lines stay)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from shoploop.cli.main import app
from shoploop.domain import Product
from shoploop.ranking.algolia import (
    AlgoliaExportError,
    Conversion,
    merge_block,
    read_export,
    rules_from_record,
    synonym_lines,
)
from shoploop.ranking.rules import Candidate, RuleBook, RuleContext, apply_rules
from shoploop.retrieval.query_understanding import SynonymTable
from shoploop.retrieval.shop_synonyms import check_rules

runner = CliRunner()

SYNONYMS = [
    {"objectID": "s1", "type": "synonym", "synonyms": ["sofa", "couch", "settee"]},
    {"objectID": "s2", "type": "oneWaySynonym", "input": "phone", "synonyms": ["smartphone", "mobile"]},
    {"objectID": "s3", "type": "altCorrection1", "word": "tshirt", "corrections": ["t shirt"]},
    {"objectID": "s4", "type": "placeholder", "placeholder": "<size>", "replacements": ["s", "m"]},
    {"objectID": "s5", "type": "synonym", "synonyms": ["a, b", "c"]},
    {"objectID": "s6", "type": "synonym", "synonyms": ["!!", "??"]},  # no words: not a rule
]

RULES = [
    {
        "objectID": "black-friday",
        "description": "Black Friday TVs",
        "conditions": [
            {"pattern": "tv", "anchoring": "contains"},
            {"pattern": "television", "anchoring": "is"},
        ],
        "consequence": {
            "promote": [{"objectIDs": ["tv-1", "tv-2"], "position": 0}, {"objectID": "tv-9", "position": 4}],
            "hide": [{"objectID": "tv-old"}],
            "params": {
                "optionalFilters": ["brand:Samsung<score=2>", "brand:-Acme"],
                "filters": "price < 500",
            },
        },
        "validity": [{"from": 1764547200, "until": 1765152000}],
        "enabled": True,
    },
    {
        "objectID": "returns",
        "conditions": [{"pattern": "return policy", "anchoring": "is"}],
        "consequence": {
            "params": {"renderingContent": {"redirect": {"url": "https://shop.example/returns"}}}
        },
    },
    {
        "objectID": "by-brand",
        "conditions": [{"pattern": "{facet:brand}", "anchoring": "contains"}],
        "consequence": {"params": {"automaticFacetFilters": [{"facet": "brand"}]}},
    },
    {
        "objectID": "apple-start",
        "conditions": [{"pattern": "apple", "anchoring": "startsWith"}],
        "consequence": {"params": {"optionalFilters": ["category:Phones"]}},
    },
]


def test_synonym_records_become_file_lines():
    done = Conversion()
    lines = synonym_lines(SYNONYMS, done, check=check_rules)
    assert lines == ["sofa, couch, settee", "phone => phone, smartphone, mobile", "tshirt => tshirt, t shirt"]
    assert done.converted == 3
    assert any(n.startswith("s4: synonym type 'placeholder'") for n in done.notes)
    assert any(n.startswith("s5: a phrase holds ','") for n in done.notes)
    assert any(n.startswith("s6: not a working rule (line 1:") for n in done.notes)
    table = check_rules("\n".join(lines))
    # one-way: a phone search also finds smartphones, a smartphone search does not find "phone"
    assert table.apply(["phone"])[1] == ["smartphone", "mobile"]
    assert table.apply(["smartphone"])[1] == []
    assert table.apply(["couch"])[1] == ["sofa", "settee"]


def test_merge_block_replaces_only_the_imported_block():
    when = datetime(2026, 12, 7, tzinfo=UTC)
    first = merge_block("# ours\nunicorn lamp => night light\n", ["sofa, couch"], "syn.json", when)
    assert first.startswith("# ours\nunicorn lamp => night light\n\n# >>> imported from Algolia (syn.json")
    again = merge_block(first + "fridge => refrigerator\n", ["tv, television"], "syn.json", when)
    assert "sofa, couch" not in again and "tv, television" in again
    assert "unicorn lamp => night light" in again and "fridge => refrigerator" in again
    assert again.count("# >>> imported from Algolia") == 1
    assert isinstance(check_rules(again), SynonymTable)


def test_a_promotion_rule_becomes_pins_hide_boost_and_bury():
    done = Conversion()
    rules = {r.rule_id: r for r in rules_from_record(RULES[0], done)}
    kinds = sorted((r.kind, r.item_id, r.position) for r in rules.values())
    assert kinds == [
        ("boost", None, None),
        ("bury", None, None),
        ("hide", None, None),
        ("pin", "tv-1", 1),
        ("pin", "tv-2", 2),
        ("pin", "tv-9", 5),
    ]
    rule = next(iter(rules.values()))
    assert rule.scope.query_contains == ("tv",) and rule.scope.query_exact == ("television",)
    assert rule.start == datetime(2025, 12, 1, tzinfo=UTC) and rule.end == datetime(2025, 12, 8, tzinfo=UTC)
    assert rule.name == "Black Friday TVs"
    assert all(r.rule_id.startswith("algolia-black-friday-") for r in rules.values())
    boost = next(r for r in rules.values() if r.kind == "boost")
    assert boost.match.brands == ("Samsung",)
    assert any("consequence 'filters' has no counterpart" in n for n in done.notes)
    # served: in the rule's week, a "tv" search gets the pins on top and the old model hidden
    items = [Candidate(i, 1.0 - n / 10) for n, i in enumerate(["x", "tv-old", "tv-2", "y", "tv-1"])]
    ids = ["x", "tv-old", "tv-2", "y", "tv-1", "tv-9"]
    products = {i: Product(item_id=i, title=i, brand="Samsung" if i == "y" else "Acme") for i in ids}
    ctx = RuleContext("search", "tv", now=datetime(2025, 12, 3, tzinfo=UTC))
    out = apply_rules(items, list(rules.values()), ctx, products)
    assert [c.item_id for c in out.items][:2] == ["tv-1", "tv-2"] and "tv-old" not in [
        c.item_id for c in out.items
    ]


def test_redirect_placeholder_and_anchoring():
    done = Conversion()
    [redirect] = rules_from_record(RULES[1], done)
    assert redirect.kind == "redirect" and redirect.redirect_url == "https://shop.example/returns"
    assert redirect.scope.query_exact == ("return policy",)
    assert rules_from_record(RULES[2], done) == []
    assert any(n.startswith("by-brand: no condition has a counterpart") for n in done.notes)
    [boost] = rules_from_record(RULES[3], done)
    assert boost.scope.query_contains == ("apple",) and boost.match.categories == ("Phones",)
    assert any("'startsWith' 'apple' taken as 'contains'" in n for n in done.notes)


def test_exports_read_as_array_or_lines_and_refuse_anything_else(tmp_path):
    array, lines, bad = tmp_path / "a.json", tmp_path / "l.jsonl", tmp_path / "bad.json"
    array.write_text(json.dumps(SYNONYMS), encoding="utf-8")
    lines.write_text("\n".join(json.dumps(s) for s in SYNONYMS), encoding="utf-8")
    bad.write_text('{"not": "a list"}', encoding="utf-8")
    assert read_export(array) == read_export(lines) == SYNONYMS
    with pytest.raises(AlgoliaExportError, match=r"bad\.json: expected a JSON array"):
        read_export(bad)


def test_import_algolia_end_to_end(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "synonyms.txt").write_text("unicorn lamp => night light\n", encoding="utf-8")
    syn, rules = tmp_path / "synonyms.json", tmp_path / "rules.json"
    syn.write_text(json.dumps(SYNONYMS), encoding="utf-8")
    rules.write_text(json.dumps(RULES), encoding="utf-8")
    args = ["import", "algolia", "--synonyms", str(syn), "--rules", str(rules), "--home", str(home)]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "synonyms: 3 converted" in result.output and "rules: 3 converted" in result.output
    assert "{facet:brand}" in result.output  # notes are printed as written
    text = (home / "synonyms.txt").read_text(encoding="utf-8")
    assert text.startswith("unicorn lamp => night light\n") and "phone => phone, smartphone, mobile" in text
    book = RuleBook(home / "rules.json")
    assert len(book.all()) == 8
    # the shop edits the export and imports again: replaced, not duplicated
    RULES[0]["consequence"]["promote"] = [{"objectID": "tv-3", "position": 0}]
    rules.write_text(json.dumps(RULES), encoding="utf-8")
    again = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert again.exit_code == 0, again.output
    book = RuleBook(home / "rules.json")
    pins = [r.item_id for r in book.all() if r.kind == "pin"]
    assert pins == ["tv-3"] and len(book.all()) == 6
    assert (home / "synonyms.txt").read_text(encoding="utf-8").count("# >>> imported from Algolia") == 1
    nothing = runner.invoke(app, ["import", "algolia", "--home", str(home)])
    assert nothing.exit_code != 0 and "--synonyms FILE, --rules FILE or both" in nothing.output
