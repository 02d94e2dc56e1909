from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shoploop.retrieval.query_understanding import (
    SizeConstraint,
    SynonymTable,
    TypoCorrector,
    damerau_levenshtein,
    parse_phrases,
)

VOCAB = {
    "drill": 50,
    "hammer": 30,
    "shower": 20,
    "bracket": 12,
    "brackets": 3,
    "paint": 40,
    "faucet": 9,
    "fauset": 1,
}


def corrector() -> TypoCorrector:
    return TypoCorrector().fit(VOCAB, protected={"tv"})


def test_damerau_levenshtein():
    assert damerau_levenshtein("drill", "drill") == 0
    assert damerau_levenshtein("dirll", "drill") == 1  # transposition
    assert damerau_levenshtein("drl", "drill") == 2
    assert damerau_levenshtein("abc", "xyzuv", 2) == 3


def test_corrects_unknown_words():
    c = corrector()
    assert c.correct(["drils", "hamer", "showr"]) == (
        ["drill", "hammer", "shower"],
        {"drils": "drill", "hamer": "hammer", "showr": "shower"},
    )
    assert c.correct_token("brakcets") == "brackets"  # edit 1 (transposition) beats frequency


def test_never_corrects_known_words_numbers_or_short_tokens():
    c = corrector()
    # "fauset" is in the catalog (once): a known word is never "corrected", even towards a frequent one.
    assert c.correct_token("fauset") is None
    assert c.correct_token("tv") is None  # protected (synonym vocabulary)
    assert (
        c.correct_token("2x4") is None and c.correct_token("1200") is None and c.correct_token("m18") is None
    )
    assert c.correct_token("dri") is None  # too short to guess
    assert c.correct_token("zzzzzzz") is None  # nothing close


def test_frequency_breaks_ties():
    c = TypoCorrector().fit({"paint": 40, "point": 2, "pains": 5})
    assert c.correct_token("poant") in {"paint", "point"}
    assert c.correct_token("paont") == "paint"


def test_incremental_vocabulary():
    c = corrector()
    c.add({"trowel": 3})
    assert c.correct_token("trowl") == "trowel"
    assert c.correct_token("trowel") is None


def test_synonyms_groups_and_rewrites():
    t = SynonymTable.parse("sofa, couch\ntv, telly => television\n# comment\nlight bulb, lightbulb")
    toks, exp, applied = t.apply(["cheap", "tv", "couch"])
    assert toks == ["cheap", "television", "couch"]
    assert exp == ["sofa"]
    assert "tv => television" in applied
    toks, exp, _ = t.apply(["lightbulb"])
    assert exp == ["light", "bulb"]
    assert t.apply(["drill"]) == (["drill"], [], [])


def test_right_hand_sides_with_alternatives_read_as_solr_and_elasticsearch_do():
    t = SynonymTable.parse("ipod, i pod => ipod, music player\nbeer => ale, lager\nmac => mac, macintosh")
    # "i pod" is replaced by the first alternative and also searches the rest
    toks, exp, applied = t.apply(["i", "pod", "case"])
    assert toks == ["ipod", "case"] and exp == ["music", "player"]
    # the first alternative is the phrase itself: kept, the rest added (one-way expansion)
    toks, exp, _ = t.apply(["ipod"])
    assert toks == ["ipod"] and exp == ["music", "player"]
    assert t.apply(["beer"])[:2] == (["ale"], ["lager"])
    toks, exp, applied = t.apply(["mac", "mini"])
    assert toks == ["mac", "mini"] and exp == ["macintosh"] and applied == ["mac -> also macintosh"]
    # one way only: the added phrases do not lead back
    assert t.apply(["macintosh"]) == (["macintosh"], [], [])
    assert t.apply(["lager"]) == (["lager"], [], [])
    assert {"music", "macintosh", "lager"} <= t.vocabulary()


def test_default_synonyms_load():
    t = SynonymTable.default()
    assert t.apply(["tv"])[0] == ["television"]


def test_price_phrases():
    p = parse_phrases("tv under $50")
    assert (p.text, p.min_price, p.max_price) == ("tv", None, 50.0)
    assert parse_phrases("below 30 dollars lamp").max_price == 30.0
    p = parse_phrases("between 20 and 40")
    assert (p.min_price, p.max_price, p.text) == (20.0, 40.0, "")
    assert parse_phrases("over $100 drill").min_price == 100.0
    assert parse_phrases("$20-$40 fan")[1:3] if False else parse_phrases("$20-$40 fan").max_price == 40.0


def test_size_phrases_stay_in_text():
    p = parse_phrases("32 inch tv")
    assert p.sizes == (SizeConstraint(32.0, "inch"),) and p.text == "32 inch tv"
    assert parse_phrases("5 gal bucket").sizes == (SizeConstraint(5.0, "gal"),)
    # "under 50 lbs" is a weight, not a price
    p = parse_phrases("under 50 lbs sand")
    assert p.max_price is None and p.sizes == (SizeConstraint(50.0, "lb"),)


@given(st.text(max_size=120))
def test_parser_never_crashes(text):
    parse_phrases(text)


@given(st.text(alphabet=st.characters(blacklist_categories=("Nd", "No", "Nl")), max_size=120))
def test_no_numbers_no_filters(text):
    p = parse_phrases(text)
    assert p.min_price is None and p.max_price is None and p.sizes == ()
