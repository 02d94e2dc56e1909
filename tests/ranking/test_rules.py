from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shoploop.domain import Product
from shoploop.ranking.rules import Candidate, ItemMatch, Rule, RuleBook, RuleContext, RuleScope, apply_rules

NOW = datetime(2026, 6, 1, tzinfo=UTC)
PRODUCTS = {
    "a": Product(item_id="a", title="Drill A", category_path=("Tools", "Drills"), brand="Bosch"),
    "b": Product(item_id="b", title="Drill B", category_path=("Tools", "Drills"), brand="Makita"),
    "c": Product(
        item_id="c",
        title="Saw C",
        category_path=("Tools", "Saws"),
        brand="Bosch",
        attributes={"colour": "red"},
    ),
    "d": Product(item_id="d", title="Pan D", category_path=("Kitchen", "Cookware"), brand="Tefal"),
    "z": Product(item_id="z", title="Promo Z", category_path=("Tools",), brand="Acme"),
}


def ranked(*ids):
    # scores 10, 9, 8, ... so the model's order is the argument order
    return [Candidate(item_id=i, score=10.0 - n) for n, i in enumerate(ids)]


def run(rules, *, query="drill", surface="search", categories=(), now=NOW, ids=("a", "b", "c", "d")):
    ctx = RuleContext(surface=surface, query=query, categories=categories, now=now)
    return apply_rules(ranked(*ids), rules, ctx, PRODUCTS)


def order(outcome):
    return [c.item_id for c in outcome.items]


def test_no_rules_keeps_model_order():
    out = run([])
    assert order(out) == ["a", "b", "c", "d"]
    assert out.applied == []


def test_pin_moves_item_and_names_rule():
    pin = Rule(rule_id="p1", name="promo", kind="pin", item_id="d", position=1)
    out = run([pin])
    assert order(out) == ["d", "a", "b", "c"]
    assert out.items[0].explanation["rules"][0]["rule_id"] == "p1"
    assert out.applied == ["p1"]


def test_pin_of_item_not_in_list_inserts_it():
    out = run([Rule(rule_id="p", name="promo", kind="pin", item_id="z", position=2)])
    assert order(out) == ["a", "z", "b", "c", "d"]


def test_pin_beyond_list_end_appends():
    out = run([Rule(rule_id="p", name="promo", kind="pin", item_id="z", position=9)], ids=("a", "b"))
    assert order(out) == ["a", "b", "z"]


def test_two_pins_same_slot_higher_priority_wins():
    low = Rule(rule_id="low", name="l", kind="pin", item_id="c", position=1, priority=1)
    high = Rule(rule_id="high", name="h", kind="pin", item_id="d", position=1, priority=5)
    out = run([low, high])
    assert order(out)[:2] == ["d", "c"]


def test_boost_by_brand_and_bury_by_category():
    boost = Rule(rule_id="b", name="bosch", kind="boost", match=ItemMatch(brands=("bosch",)), strength=1.0)
    out = run([boost])
    assert order(out)[:2] == ["a", "c"]
    assert "rules" in out.items[1].explanation
    bury = Rule(
        rule_id="u", name="no drills", kind="bury", match=ItemMatch(categories=("Drills",)), strength=1
    )
    assert order(run([bury])) == ["c", "d", "a", "b"]


def test_boost_by_attribute():
    rule = Rule(
        rule_id="r", name="red", kind="boost", match=ItemMatch(attributes={"colour": "red"}), strength=1
    )
    assert order(run([rule]))[0] == "c"


def test_hide_beats_pin():
    hide = Rule(rule_id="h", name="recall", kind="hide", match=ItemMatch(item_ids=("d",)))
    pin = Rule(rule_id="p", name="promo", kind="pin", item_id="d", position=1, priority=100)
    out = run([pin, hide])
    assert "d" not in order(out)
    assert out.applied == ["h"]


def test_redirect_short_circuits():
    red = Rule(
        rule_id="r",
        name="returns",
        kind="redirect",
        redirect_url="/pages/returns",
        scope=RuleScope(query_contains=("returns",)),
    )
    out = run([red], query="how do returns work")
    assert out.redirect == "/pages/returns"
    assert out.items == []
    assert run([red], query="drill").redirect is None


@pytest.mark.parametrize(
    ("scope", "kwargs", "applies"),
    [
        (RuleScope(surfaces=("home",)), {"surface": "search"}, False),
        (RuleScope(surfaces=("home",)), {"surface": "home"}, True),
        (RuleScope(query_exact=("Cordless Drill",)), {"query": " cordless drill "}, True),
        (RuleScope(query_exact=("cordless drill",)), {"query": "drill"}, False),
        (RuleScope(query_contains=("drill",)), {"query": "red drill bits"}, True),
        (RuleScope(query_contains=("drill",)), {"query": "drilling"}, False),
        (RuleScope(categories=("Tools",)), {"categories": ("tools",)}, True),
        (RuleScope(categories=("Tools",)), {"categories": ()}, False),
    ],
)
def test_scopes(scope, kwargs, applies):
    rule = Rule(rule_id="p", name="x", kind="pin", item_id="d", position=1, scope=scope)
    assert (order(run([rule], **kwargs))[0] == "d") is applies


def test_time_window():
    rule = Rule(
        rule_id="p",
        name="x",
        kind="pin",
        item_id="d",
        position=1,
        start=NOW - timedelta(days=1),
        end=NOW + timedelta(days=1),
    )
    assert order(run([rule]))[0] == "d"
    assert order(run([rule], now=NOW + timedelta(days=2)))[0] == "a"
    assert order(run([rule], now=NOW - timedelta(days=2)))[0] == "a"
    disabled = rule.model_copy(update={"enabled": False})
    assert order(run([disabled]))[0] == "a"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"name": "x", "kind": "pin", "item_id": "a"}, "position"),
        ({"name": "x", "kind": "boost"}, "match"),
        ({"name": "x", "kind": "redirect", "redirect_url": "/x"}, "query"),
        ({"name": "x", "kind": "hide", "match": {}}, "match"),
        ({"name": "x", "kind": "boost", "match": {"brands": ["a"]}, "strength": 2}, "strength"),
    ],
)
def test_invalid_rules_name_the_problem(raw, field):
    with pytest.raises(ValidationError) as err:
        Rule.model_validate(raw)
    assert field in str(err.value)


def test_rulebook_persists_atomically(tmp_path):
    path = tmp_path / "rules.json"
    book = RuleBook(path)
    rule = book.put(Rule(name="promo", kind="pin", item_id="a", position=1))
    assert RuleBook(path).get(rule.rule_id) == rule
    assert book.delete(rule.rule_id)
    assert RuleBook(path).all() == []
    assert not book.delete("missing")
    assert [p.name for p in tmp_path.iterdir()] == ["rules.json"]  # no temp files left behind


def test_two_rulebooks_on_one_file_never_write_over_each_other(tmp_path):
    """A server's book and the CLI's (shoploop import algolia) share HOME/rules.json."""
    path = tmp_path / "rules.json"
    server, cli = RuleBook(path), RuleBook(path)
    first = cli.put(Rule(rule_id="from-cli", name="cli", kind="pin", item_id="a", position=1))
    assert server.reload() and server.get("from-cli") == first
    assert not server.reload()  # unchanged since: nothing to do
    server.put(Rule(rule_id="from-dashboard", name="dash", kind="pin", item_id="b", position=2))
    cli.put(Rule(rule_id="from-cli-2", name="cli 2", kind="pin", item_id="c", position=3))
    assert {r.rule_id for r in RuleBook(path).all()} == {"from-cli", "from-dashboard", "from-cli-2"}
    assert cli.delete("from-dashboard")  # seen although another book wrote it
    path.write_text("{not json", encoding="utf-8")
    assert not server.reload()  # a damaged file is not applied: the rules in memory stay
    assert server.get("from-cli") is not None
