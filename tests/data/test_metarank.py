"""Metarank's event format converted to shoploop rows, and `shoploop import metarank` end to end on
a small dump: items, a ranking, interactions joined to it, and what cannot be converted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from shoploop.cli.main import app
from shoploop.data.metarank import (
    DEFAULT_INTERACTIONS,
    MetarankError,
    MetarankEvents,
    _timestamp,
    item_row,
    parse_interaction_map,
)
from shoploop.store.home import open_stores

runner = CliRunner()
NOW_MS = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)


def test_item_fields_become_product_fields_and_attributes():
    row = item_row(
        {
            "event": "item",
            "id": "e1",
            "item": "p1",
            "timestamp": "1599391467000",
            "fields": [
                {"name": "title", "value": "Cordless drill"},
                {"name": "price", "value": 99.5},
                {"name": "vendor", "value": "Bosch"},
                {"name": "category", "value": "Tools > Drills"},
                {"name": "color", "value": "green"},
                {"name": "tags", "value": ["a", "b"]},  # a list is no attribute value: left out
            ],
        }
    )
    assert row == {
        "item_id": "p1",
        "updated_at": "2020-09-06T11:24:27+00:00",
        "title": "Cordless drill",
        "price": 99.5,
        "brand": "Bosch",
        "category_path": ["Tools", "Drills"],
        "attributes": {"color": "green"},
    }


def test_a_ranking_becomes_an_impression_and_a_click_finds_its_position():
    events = MetarankEvents()
    ranking = {
        "event": "ranking",
        "id": "r1",
        "timestamp": "2022-06-22T11:21:39Z",
        "user": "u1",
        "session": "s1",
        "fields": [{"name": "query", "value": "drill"}],
        "items": [{"id": "p3", "relevancy": 2.0}, {"id": "p1", "relevancy": 1.0}, {"id": "p2"}],
    }
    impression = events.row(ranking)
    assert impression["type"] == "impression" and impression["request_id"] == impression["event_id"] == "r1"
    assert impression["surface"] == "search" and impression["query"] == "drill"
    assert impression["items"] == [
        {"item_id": "p3", "position": 1, "score": 2.0},
        {"item_id": "p1", "position": 2, "score": 1.0},
        {"item_id": "p2", "position": 3},
    ]
    assert impression["timestamp"] == "2022-06-22T11:21:39+00:00"
    click = events.row(
        {"event": "interaction", "id": "i1", "ranking": "r1", "timestamp": 1655896900000, "user": "u1",
         "type": "click", "item": "p1"}
    )  # fmt: skip
    assert (click["type"], click["request_id"], click["position"]) == ("click", "r1", 2)
    browse = events.row({**ranking, "id": "r2", "fields": [{"name": "source", "value": "Similar"}]})
    assert browse["surface"] == "similar" and "query" not in browse
    assert events.row({**ranking, "id": "r3", "fields": []})["surface"] == "home"


def test_purchases_take_their_price_or_the_catalogs():
    events = MetarankEvents(price_of={"p1": 12.0}.get)
    base = {"event": "interaction", "id": "i", "timestamp": "1599391467000", "user": "u", "type": "purchase"}
    bought = events.row({**base, "item": "p1", "fields": [{"name": "count", "value": 2}]})
    assert bought["items"] == [{"item_id": "p1", "quantity": 2, "price": 12.0}]
    priced = events.row({**base, "item": "p9", "fields": [{"name": "price", "value": 5}]})
    assert priced["items"] == [{"item_id": "p9", "quantity": 1, "price": 5}]
    with pytest.raises(MetarankError, match="price"):
        events.row({**base, "item": "p9"})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"event": "interaction", "id": "i", "timestamp": "1", "type": "like", "item": "p"}, "type"),
        ({"event": "interaction", "id": "i", "timestamp": "1", "type": "click"}, "item"),
        ({"event": "ranking", "id": "r", "timestamp": "1", "items": []}, "items"),
        ({"event": "ranking", "id": "r", "timestamp": "soon", "items": [{"id": "p"}]}, "timestamp"),
        ({"event": "ranking", "id": "r", "timestamp": "1", "items": [{"id": "p"}], "fields": "x"}, "fields"),
        ({"event": "interaction", "id": "i", "timestamp": "1", "type": "rating", "item": "p"}, "rating"),
        ({"event": "nonsense", "id": "x", "timestamp": "1"}, "event"),
    ],
)
def test_what_cannot_be_converted_names_the_field(raw, field):
    with pytest.raises(MetarankError, match=f"^{field}"):
        MetarankEvents().row(raw)


def test_the_interaction_map_extends_the_defaults_and_refuses_bad_targets():
    mapping = parse_interaction_map(["like=click", " wish = add_to_cart "])
    assert mapping["like"] == "click" and mapping["wish"] == "add_to_cart"
    assert mapping["purchase"] == DEFAULT_INTERACTIONS["purchase"]
    for bad in ("like", "like=", "=click", "like=impression", "like=hug"):
        with pytest.raises(MetarankError, match="--interaction"):
            parse_interaction_map([bad])


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_epoch_milliseconds_parse_the_same_as_text_or_number(ms):
    as_text, as_number = _timestamp(str(ms)), _timestamp(ms)
    assert as_text == as_number
    assert datetime.fromisoformat(as_text) == datetime.fromtimestamp(ms / 1000, tz=UTC)


@given(st.text(max_size=30))
def test_the_timestamp_parser_never_crashes(text):
    try:
        parsed = _timestamp(text)
    except MetarankError as err:
        assert str(err).startswith("timestamp:")
    else:
        assert datetime.fromisoformat(parsed).tzinfo is not None


# ------------------------------------------------------------------------------------------ CLI
def _dump(path: Path) -> Path:
    def item(i: str, title: str, price: float | None) -> dict:
        fields = [{"name": "title", "value": title}] + ([{"name": "price", "value": price}] if price else [])
        return {
            "event": "item",
            "id": f"it-{i}",
            "item": i,
            "timestamp": str(NOW_MS - 10_000),
            "fields": fields,
        }

    lines = [
        item("p1", "Cordless drill", 99.0),
        item("p2", "Hammer", 12.5),
        {"event": "item", "id": "it-bad", "item": "p3", "timestamp": str(NOW_MS), "fields": []},  # no title
        {"event": "user", "id": "us-1", "user": "u1", "timestamp": str(NOW_MS), "fields": []},
        {"event": "ranking", "id": "r1", "timestamp": str(NOW_MS), "user": "u1", "session": "s1",
         "fields": [{"name": "query", "value": "drill"}], "items": [{"id": "p2"}, {"id": "p1"}]},
        {"event": "interaction", "id": "i1", "ranking": "r1", "timestamp": str(NOW_MS + 5_000), "user": "u1",
         "type": "click", "item": "p1"},
        {"event": "interaction", "id": "i2", "ranking": "r1", "timestamp": str(NOW_MS + 9_000), "user": "u1",
         "type": "purchase", "item": "p1"},
        {"event": "interaction", "id": "i3", "ranking": "r1", "timestamp": str(NOW_MS + 9_500), "user": "u1",
         "type": "like", "item": "p2"},
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n{not json\n", encoding="utf-8")
    return path


def test_import_metarank_end_to_end(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOPLOOP_PSEUDONYM_KEY", raising=False)
    home, dump = tmp_path / "home", _dump(tmp_path / "metarank.jsonl")
    args = ["import", "metarank", str(dump), "--home", str(home), "--no-progress"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "skipped 1 Metarank user-metadata events" in result.output
    with open_stores(home) as stores:
        assert sorted(stores.catalog.get_many(["p1", "p2", "p3"])) == ["p1", "p2"]
        events = {e.event_id: e for e in stores.events.scan()}
        assert set(events) == {"r1", "i1", "i2"}
        assert events["r1"].type == "impression" and [s.item_id for s in events["r1"].items] == ["p2", "p1"]
        assert (events["i1"].request_id, events["i1"].position) == ("r1", 2)
        assert events["i2"].items[0].price == 99.0  # the catalog's price
        reasons = {r.reason.split(":")[0] for r in stores.quarantine.list()}
        assert {"title", "type"} <= reasons  # the item without a title, the unmapped "like"
        assert any("invalid JSON" in r.reason or "JSON" in r.reason for r in stores.quarantine.list())
        like = next(r for r in stores.quarantine.list() if r.reason.startswith("type"))
        assert like.raw["type"] == "like"  # the Metarank event kept whole

    again = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert again.exit_code == 0
    with open_stores(home) as stores:
        assert len(stores.events) == 3  # re-importing adds nothing
    mapped = runner.invoke(app, [*args, "--interaction", "like=click"], env={"COLUMNS": "200"})
    assert mapped.exit_code == 0
    with open_stores(home) as stores:
        assert stores.events.count(types=["click"]) == 2  # the like, now a click
    bad = runner.invoke(app, [*args, "--interaction", "like=hug"])
    assert bad.exit_code == 2 and "--interaction like" in bad.output
