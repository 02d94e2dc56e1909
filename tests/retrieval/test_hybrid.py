from __future__ import annotations

import numpy as np
import pytest

from shoploop.domain.products import Product
from shoploop.retrieval.bm25 import BM25Config, BM25Index
from shoploop.retrieval.config import HybridConfig
from shoploop.retrieval.dense import DenseConfig
from shoploop.retrieval.filters import Filters
from shoploop.retrieval.hybrid import HybridSearcher, InvalidQuery


def ids(result):
    return [h.item_id for h in result.items]


def test_finds_the_obvious_product(searcher):
    r = searcher.search("cordless drill", k=3)
    assert ids(r)[0] == "p1"
    top = r.items[0].explanation
    assert set(top["matched_terms"]) >= {"cordless", "drill"}
    assert "bm25" in top["retrievers"] and top["retrievers"]["bm25"]["rank"] == 1


def test_understood_query_reports_each_step(searcher):
    r = searcher.search("drils under $100", k=5)
    u = r.understood
    assert u.corrections == {"drils": "drill"}
    assert u.filters == {"max_price": 100.0}
    assert "p1" not in ids(r)  # 129 dollars
    assert set(ids(r)[:2]) == {"p2", "p11"}
    assert searcher.search("tv").understood.synonyms == ["tv => television"]
    assert ids(searcher.search("couch", k=1)) == ["p8"]


def test_explicit_filters_and_facets(searcher):
    r = searcher.search("paint", filters=Filters(brand="Behr"), k=10)
    assert set(ids(r)) <= {"p4", "p5"} and ids(r)
    assert set(r.facets["category"]) == {"Paint"}  # counted over what the filters let through
    r = searcher.search("drill", filters=Filters(category="Tools > Power Tools", in_stock=True))
    assert set(ids(r)) <= {"p1", "p2"}


@pytest.mark.parametrize("others", [{}, {"in_stock": True}, {"max_price": 60.0}])
def test_the_brand_facet_counts_what_the_other_brands_would_add(searcher, others):
    """Disjunctive faceting: with brands ticked, the brand facet is counted as if no brand were,
    under the same other filters; the results and the other facets obey every filter."""
    without = searcher.search("paint", filters=Filters(**others) if others else None, k=10)
    picked = sorted(without.facets["brand"])[:1]
    ticked = searcher.search("paint", filters=Filters(brand=picked, **others), k=10)
    assert ticked.facets["brand"] == without.facets["brand"]
    assert len(without.facets["brand"]) > 1, "the query has several brands to choose from"
    brands = {searcher.columns_.brand[searcher.key_of_[h.item_id]] for h in ticked.items}
    assert brands <= set(picked)
    assert sum(ticked.facets["in_stock"].values()) == ticked.n_candidates


def test_the_category_facet_still_offers_the_other_categories(searcher):
    """A shopper who narrowed to one top-level category can switch: that facet is counted as if
    no category were chosen; the results and the leaf paths obey the filter."""
    without = searcher.search("drill paint sofa", k=10)
    assert len(without.facets["category"]) > 1
    picked = sorted(without.facets["category"])[0]
    narrowed = searcher.search("drill paint sofa", filters=Filters(category=picked), k=10)
    assert narrowed.facets["category"] == without.facets["category"]
    assert all(path.split(" > ")[0] == picked for path in narrowed.facets["category_path"])
    tops = {searcher.columns_.category[searcher.key_of_[h.item_id]][0] for h in narrowed.items}
    assert tops == {picked}


@pytest.mark.parametrize("bad", ["", "   ", "\n\t"])
def test_empty_queries_are_a_clear_error(searcher, bad):
    with pytest.raises(InvalidQuery) as err:
        searcher.search(bad)
    assert err.value.field == "query" and isinstance(err.value, ValueError)


def test_long_non_ascii_and_chinese_queries_do_not_crash(searcher):
    r = searcher.search("drill " * 2000)
    assert r.understood.truncated and ids(r)[0] in {"p1", "p2", "p11"}
    assert isinstance(searcher.search("电视机 32寸").items, list)
    assert isinstance(searcher.search("perceuse sans fil à percussion").items, list)
    assert isinstance(searcher.search("🙂🔨").items, list)


def test_upserted_product_is_findable_and_deleted_never_returned(searcher, fake_encoder, tmp_path):
    searcher.upsert([Product(item_id="n1", title="Zebra Pattern Wallpaper Roll", price=20.0)])
    assert ids(searcher.search("zebra wallpaper", k=3))[0] == "n1"
    searcher.delete(["p1"])
    for q in ["cordless drill", "drill lithium 18 volt", "dewalt"]:
        assert "p1" not in ids(searcher.search(q, k=20))
    # Replacing a product's text: the old text no longer finds it, the new one does.
    searcher.upsert([Product(item_id="p3", title="Mallet Rubber 24 oz.", price=12.0)])
    assert "p3" in ids(searcher.search("rubber mallet", k=3))
    # (dense returns the whole tiny catalog, so check that the old text no longer *matches* lexically)
    r = searcher.search("claw fiberglass", k=20)
    assert all("bm25" not in h.explanation["retrievers"] for h in r.items if h.item_id == "p3")
    # Round trip keeps deletions and upserts.
    searcher.save(tmp_path / "idx")
    loaded = HybridSearcher.load(tmp_path / "idx", encoder=fake_encoder)
    assert "p1" not in ids(loaded.search("cordless drill", k=20))
    assert ids(loaded.search("zebra wallpaper", k=1)) == ["n1"]
    assert ids(loaded.search("paint", k=5)) == ids(searcher.search("paint", k=5))
    loaded.upsert([Product(item_id="p1", title="Cordless Drill 18-Volt Lithium")])
    assert ids(loaded.search("cordless drill", k=1)) == ["p1"]


def test_unchanged_products_are_not_re_encoded(searcher, products, fake_encoder):
    before = fake_encoder.n_encoded
    searcher.upsert(products[:5])
    assert fake_encoder.n_encoded == before and searcher.n_encoded_last_upsert_ == 0
    searcher.upsert([products[0].model_copy(update={"title": "Cordless Drill 20-Volt"})])
    assert fake_encoder.n_encoded == before + 1


def test_bm25_delta_scores_match_a_full_index(products):
    texts = [p.text() for p in products]
    full = BM25Index(BM25Config()).fit(list(range(len(texts))), texts)
    inc = BM25Index(BM25Config()).fit(list(range(len(texts) - 1)), texts[:-1])
    inc.upsert([len(texts) - 1], texts[-1:])
    q = inc.analyze("garden hose heavy duty")
    a, b = full.score_all(q, len(texts)), inc.score_all(q, len(texts))
    # The delta document uses the main index's statistics; it must rank first just as in the full index.
    assert int(np.argmax(a)) == int(np.argmax(b)) == len(texts) - 1
    inc.rebuild()
    assert np.allclose(inc.score_all(q, len(texts)), a, rtol=1e-5)
    assert not inc.delta_ and not inc.deleted_


def test_bm25_rebuild_threshold(products):
    idx = BM25Index(BM25Config(delta_rebuild_threshold=2)).fit(
        [0, 1], [products[0].text(), products[1].text()]
    )
    idx.upsert([2, 3, 4], [p.text() for p in products[2:5]])
    assert not idx.delta_ and len(idx.main_keys_) == 5
    idx.delete([0])
    assert idx.score_all(idx.analyze("cordless drill"), 5)[0] == 0.0


def test_intent_boost_and_learned_fusion(searcher):
    searcher.fit_intent(
        ["drill", "cordless drill", "paint", "deck stain", "shower head"], ["p1", "p2", "p4", "p5", "p6"]
    )
    u = searcher.understand("drill")
    assert u.predicted_categories[0][0] == "Tools > Power Tools"
    r = searcher.search("drill", k=3)
    assert r.items[0].explanation["category_boost"] > 0
    score = searcher.fit_fusion(["drill", "paint"], [{"p1": 3.0, "p2": 1.0}, {"p4": 3.0, "p10": 1.0}])
    assert 0.0 <= score <= 1.0


@pytest.mark.parametrize("backend", ["hnswlib", "exact"])
def test_other_dense_backends(products, fake_encoder, backend, tmp_path):
    s = HybridSearcher(HybridConfig(dense=DenseConfig(backend=backend)), encoder=fake_encoder).fit(products)
    s.delete(["p6"])
    assert "p6" not in ids(s.search("rain shower head"))
    s.save(tmp_path)
    assert "p6" not in ids(HybridSearcher.load(tmp_path, encoder=fake_encoder).search("shower head"))


def test_bm25_only_searcher(products):
    s = HybridSearcher(HybridConfig(use_dense=False)).fit(products)
    assert ids(s.search("angle bracket", k=1)) == ["p7"]


def test_compound_join_and_price_filter_without_prices(fake_encoder):
    prods = [
        Product(item_id="d1", title="BEHR DeckOver Coating 1 gal."),
        Product(item_id="d2", title="BEHR DeckOver Coating 5 gal."),
        Product(item_id="w1", title="Dishwasher Rack"),
    ]
    s = HybridSearcher(HybridConfig(), encoder=fake_encoder).fit(prods)
    r = s.search("deck over", k=2)
    assert "deck over ~ deckover" in r.understood.synonyms
    assert set(ids(r)) == {"d1", "d2"}
    # No product has a price: the parsed filter is reported but not applied (else nothing is found).
    r = s.search("deckover under $20", k=2)
    assert set(ids(r)) == {"d1", "d2"} and r.understood.notes


def test_bm25_matched_terms_cover_main_delta_deleted_and_saved_documents(tmp_path):
    idx = BM25Index(BM25Config()).fit([0, 1], ["cordless drill kit", "garden hose"])
    q = idx.analyze("drill hose cordless")
    assert idx.matched_terms(0, q) == sorted(set(idx.analyze("cordless drill")))
    assert idx.matched_terms(1, q) == idx.analyze("hose")
    assert idx.matched_terms(7, q) == []  # unknown key
    idx.upsert([1], ["cordless hose reel"])  # the delta copy replaces the main one
    assert idx.matched_terms(1, q) == sorted(set(idx.analyze("cordless hose")))
    idx.delete([0])
    assert idx.matched_terms(0, q) == []
    idx.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert loaded.matched_terms(1, q) == idx.matched_terms(1, q)
    assert loaded.doc_tokens(1) == idx.doc_tokens(1)
    # A token never matches inside a longer one ("hose" is not in "hoses").
    plural = BM25Index(BM25Config(stem=False)).fit([0], ["hoses"])
    assert plural.matched_terms(0, ["hose"]) == [] and plural.matched_terms(0, ["hoses"]) == ["hoses"]
