"""Category pages' own learned ranker: logged inputs, training in the loop, serving, A/B override."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from shoploop.engine.variants import ServingOverride
from shoploop.feedback.exploration import ExplorationConfig
from shoploop.feedback.features import FEATURE_NAMES
from shoploop.feedback.gate import GateConfig
from shoploop.feedback.ltr import LearnedRanker, RankerConfig
from shoploop.feedback.retrain import RetrainConfig, RetrainLoop
from shoploop.feedback.training_data import featurize, join_logs
from tests.engine.conftest import FAST, make_engine
from tests.feedback.conftest import liked_dcg, promote_ranker, ranker_from_logs, visit

LOOP = RetrainConfig(min_train_lists=20, ranker=RankerConfig(n_estimators=60), gate=GateConfig(min_lists=10))
FUSED = FEATURE_NAMES.index("fused")
PAGES = ("Clothing > Jackets", "Clothing", "Home", "Electronics", "Sports")


def visit_pages(engine, n: int, seed: int = 0, *, k: int = 10) -> int:
    """n category-page visits by 100 shoppers (clicks as `conftest.visit`)."""
    pages = [p for p in PAGES if p.split(" > ")[0] in engine.top_categories()]

    def serve(rng):
        user = f"browser-{rng.integers(100)}"
        return engine.browse(pages[rng.integers(len(pages))], user_id=user, k=k), user

    return visit(engine, n, seed, serve, prefix="visit")


@pytest.fixture(scope="module")
def browsed():
    """An engine whose category pages explore on 30% of visits, after 500 visits, and one loop round."""
    engine = make_engine(replace(FAST, exploration=ExplorationConfig(budget=0.3)), n_products=300)[0]
    assert visit_pages(engine, 500, seed=1) > 100
    loop = RetrainLoop(engine, LOOP)
    return engine, loop, loop.run_once()


def test_category_pages_log_the_featured_scores_the_ranker_learns_from(browsed):
    engine, _, _ = browsed
    page = engine.browse("Clothing > Jackets", k=8, user_id="logger")
    logged = engine.stores.events.get_impression(page.request_id)
    featured = [i.explanation["featured_score"] for i in page.items]
    assert logged.context["base_scores"] == pytest.approx(featured, abs=1e-6)
    (lst,) = join_logs([logged], surfaces=("browse",))
    assert np.allclose(lst.base_scores, featured, atol=1e-6)
    (feats,) = featurize([logged], [lst], products=engine.products.get, explain=None)
    assert np.allclose(feats.X[:, FUSED], featured, atol=1e-5), "the featured score is the 'fused' input"
    by_price = engine.browse("Clothing > Jackets", k=8, sort="price_asc")
    assert "base_scores" not in engine.stores.events.get_impression(by_price.request_id).context
    assert join_logs(engine.stores.events.scan(), surfaces=("browse",)), "browse lists are joined on request"


def test_a_pinned_product_without_a_featured_score_is_logged_as_missing(browsed):
    engine, _, _ = browsed
    page = engine.browse("Clothing > Jackets", k=4)
    logged = engine.stores.events.get_impression(page.request_id)
    context = {**logged.context, "base_scores": [None, *logged.context["base_scores"][1:]]}
    (lst,) = join_logs([logged.model_copy(update={"context": context})], surfaces=("browse",))
    assert np.isnan(lst.base_scores[0]) and np.isfinite(lst.base_scores[1:]).all()
    (feats,) = featurize([logged], [lst], products=engine.products.get, explain=None)
    assert feats.X[0, FUSED] == 0.0
    wrong = {**logged.context, "base_scores": [1.0]}
    (short,) = join_logs([logged.model_copy(update={"context": wrong})], surfaces=("browse",))
    assert short.base_scores is None, "a list of the wrong length is not trusted"


def test_the_loop_trains_and_gates_a_category_page_ranker_apart_from_search(browsed):
    engine, _, report = browsed
    events = list(engine.stores.events.scan(exclude_flagged=True))
    assert report.lists == len(join_logs(events)), "the search ranker learns from searches only"
    browse = report.browse
    assert browse is not None and browse.version == 1, browse
    assert 500 <= browse.lists <= len(join_logs(events, surfaces=("browse",))), "the visits, not searches"
    assert browse.clicked_lists > 100 and browse.train_lists + browse.held_out_lists <= browse.clicked_lists
    assert browse.curve is not None and browse.curve["theta"][0] == 1.0
    decision = engine.stores.registry.decisions("browse_ranker")[-1]
    assert decision.reason.startswith("gate: ") and {"ndcg10_candidate", "ndcg10_active"} <= set(
        engine.stores.registry.get("browse_ranker", 1).metrics["gate"]
    )
    # its click-through features are counted as the engine counts them: the search ranker's way
    saved = LearnedRanker.load(engine.stores.registry.get("browse_ranker", 1).path)
    assert saved.examination == (engine.ranker.examination if engine.ranker is not None else None)
    assert (engine.browse_ranker is not None) == browse.promoted
    off = RetrainLoop(engine, replace(LOOP, browse_ranker=False)).run_once()
    assert off.browse is None and engine.stores.registry.active("browse_ranker") == (
        engine.stores.registry.get("browse_ranker", 1) if browse.promoted else None
    )


def test_the_learned_ranker_orders_pages_by_what_shoppers_clicked(browsed):
    engine, _, _ = browsed
    counted = engine.online.examination
    v = promote_ranker(engine, "browse_ranker", ranker_from_logs(engine, "browse"))
    assert engine.versions["browse_ranker"] == v and engine.online.examination == counted
    without = ServingOverride(label="t/featured", models={"browse_ranker": None}, policy="deterministic")
    learned_gain, featured_gain = [], []
    for page in PAGES[:3]:
        learned = engine.browse(page, k=10, user_id="newcomer", override=replace(without, models={}))
        featured = engine.browse(page, k=10, user_id="newcomer", override=without)
        assert "ltr" in learned.items[0].explanation and "ltr" not in featured.items[0].explanation
        # the contributions cost ~2 ms an item at full size: only the top few carry them
        explained = ["contributions" in i.explanation["ltr"] for i in learned.items]
        assert explained == [n < engine.config.serving.ranker_explain_top for n in range(len(explained))]
        stock = [engine.products[i.item_id].in_stock for i in learned.items]
        assert stock == sorted(stock, reverse=True), "in stock first, as in the featured order"
        scores = [i.score for i in learned.items]
        assert scores == sorted(scores, reverse=True)
        learned_gain.append(liked_dcg(learned.items))
        featured_gain.append(liked_dcg(featured.items))
        logged = engine.stores.events.get_impression(learned.request_id)
        # the input it learns from next time is the featured score, not its own output
        featured_scores = [i.explanation["featured_score"] for i in learned.items]
        assert logged.context["base_scores"] == pytest.approx(featured_scores, abs=1e-6)
    assert np.mean(learned_gain) > np.mean(featured_gain), (learned_gain, featured_gain)
    by_price = engine.browse(PAGES[0], k=10, sort="price_asc")
    assert all("ltr" not in i.explanation for i in by_price.items), "a shopper's own order is kept"


def test_rolling_back_the_first_category_ranker_returns_pages_to_the_featured_order(browsed):
    engine, _, _ = browsed
    for version in engine.stores.registry.versions("browse_ranker"):  # start from none active
        if version.status in ("active", "retired"):
            engine.stores.registry.reject("browse_ranker", version.version, reason="test reset")
    engine.sync_with_stores()
    v = promote_ranker(engine, "browse_ranker", ranker_from_logs(engine, "browse"))
    assert "ltr" in engine.browse(PAGES[0], k=5).items[0].explanation
    off = engine.rollback("browse_ranker", reason="merchandiser prefers the featured order")
    assert (off.version, off.status) == (v, "rejected")
    assert engine.browse_ranker is None and "browse_ranker" not in engine.versions
    page = engine.browse(PAGES[0], k=5)
    assert "ltr" not in page.items[0].explanation and "browse_ranker" not in page.model_version
    with pytest.raises(LookupError):
        engine.rollback("recommender")  # a model the engine cannot serve without is never switched off


def test_a_category_ranker_leaves_out_of_stock_products_last(browsed):
    engine, _, _ = browsed
    promote_ranker(engine, "browse_ranker", ranker_from_logs(engine, "browse"))
    top = next(p.category_path[0] for p in engine.products.values() if not p.in_stock)
    page = engine.browse(top, k=100, user_id="stock-check")
    stock = [engine.products[i.item_id].in_stock for i in page.items]
    assert not all(stock) and "ltr" in page.items[0].explanation
    assert stock == sorted(stock, reverse=True)
    scores = [i.score for i in page.items]
    assert scores == sorted(scores, reverse=True)
