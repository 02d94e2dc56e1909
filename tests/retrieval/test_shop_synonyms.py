"""The shop's own synonym rules: checked line by line, saved atomically, applied live."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoploop.retrieval.hybrid import HybridSearcher
from shoploop.retrieval.query_understanding import SynonymTable
from shoploop.retrieval.shop_synonyms import FILE_NAME, check_rules
from shoploop.store.files import CheckedTextFile


def ids(result):
    return [h.item_id for h in result.items]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("sofa, couch\njust one phrase\n", 2),  # a single phrase does nothing: refused, not ignored
        ("# comment\n\nlamp => \n", 3),
        ("a, b\nx =>", 2),
    ],
)
def test_a_line_that_is_not_a_rule_is_refused_with_its_number(text, line):
    with pytest.raises(ValueError, match=f"line {line}:"):
        check_rules(text)


def test_rules_parse_groups_and_rewrites():
    table = check_rules("# ours\nunicorn lamp => night light\nsofa, couch, settee  # seats\n")
    assert table.rewrites == ((("unicorn", "lamp"), ("night", "light")),)
    assert table.groups == (((("sofa",), ("couch",), ("settee",))),)


@given(st.text(max_size=300))
def test_checking_never_crashes_on_any_text(text):
    try:
        table = check_rules(text)
    except ValueError as err:
        assert str(err)  # a refusal always says why
    else:
        assert isinstance(table, SynonymTable)


def test_saved_atomically_and_read_back(tmp_path):
    shop = CheckedTextFile(tmp_path, FILE_NAME, check_rules)
    assert shop.text == "" and not shop.value.groups
    shop.set("sofa, couch\n")
    assert (tmp_path / "synonyms.txt").read_text() == "sofa, couch\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    with pytest.raises(ValueError):
        shop.set("lonely\n")
    assert (tmp_path / "synonyms.txt").read_text() == "sofa, couch\n"  # a refused text changes nothing
    assert CheckedTextFile(tmp_path, FILE_NAME, check_rules).text == "sofa, couch\n"


def test_reload_notices_another_writer_and_keeps_good_rules_over_bad(tmp_path):
    shop = CheckedTextFile(tmp_path, FILE_NAME, check_rules)
    assert shop.reload() is False
    path = tmp_path / "synonyms.txt"
    path.write_text("tap, faucet\n")
    assert shop.reload() is True and shop.text == "tap, faucet\n"
    assert shop.reload() is False  # nothing new
    path.write_text("not a rule\n")
    os.utime(path, ns=(1, 1))  # a different stamp even within the same clock tick
    assert shop.reload() is False and shop.text == "tap, faucet\n"


def test_applied_live_to_a_searcher(searcher: HybridSearcher):
    assert "p8" not in ids(searcher.search("settee", k=5))
    # a group expands the lexical query (the dense side still reads "settee")
    searcher.set_shop_synonyms(check_rules("sofa, settee\n"))
    result = searcher.search("settee", k=5)
    assert "p8" in ids(result)[:3]
    assert any("settee" in applied for applied in result.understood.synonyms)
    # a rewrite replaces the query itself
    searcher.set_shop_synonyms(check_rules("settee => sofa\n"))
    assert ids(searcher.search("settee", k=5))[0] == "p8"
    # the defaults still apply next to the shop's rules
    assert ids(searcher.search("tv", k=3))[0] == "p9"
    # a shop word is never "corrected" into a catalog word
    searcher.set_shop_synonyms(check_rules("hammerz => hammer\n"))
    assert searcher.understand("hammerz").corrections == {}
    searcher.set_shop_synonyms(SynonymTable())
    assert "p8" not in ids(searcher.search("settee", k=5))
