"""The home feed's own learned ranker: logged model scores, training in the loop, serving, rollback."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from shoploop.engine.variants import ServingOverride, parse_model_version
from shoploop.feedback.exploration import ExplorationConfig
from shoploop.feedback.features import FEATURE_NAMES
from shoploop.feedback.gate import GateConfig
from shoploop.feedback.ltr import RankerConfig
from shoploop.feedback.retrain import RetrainConfig, RetrainLoop
from shoploop.feedback.training_data import featurize, join_logs
from tests.engine.conftest import FAST, make_engine
from tests.feedback.conftest import liked_dcg, promote_ranker, ranker_from_logs, visit

LOOP = RetrainConfig(min_train_lists=20, ranker=RankerConfig(n_estimators=60), gate=GateConfig(min_lists=10))
FUSED = FEATURE_NAMES.index("fused")
SEQUENTIAL = FEATURE_NAMES.index("sequential_score")
FATIGUE = FEATURE_NAMES.index("fatigue")


def shoppers_with_history(engine, n: int = 40) -> list[str]:
    """Demo shoppers the recommender serves from their history (not the trending fallback)."""
    users = sorted({e.user_id for e in engine.stores.events.scan() if e.type == "view"})
    return [u for u in users if engine.online.profile(u).recent_items][:n]


def visit_feeds(engine, users: list[str], n: int, seed: int = 0, *, k: int = 10) -> int:
    """n home-feed visits by `users` (clicks as `conftest.visit`)."""

    def serve(rng):
        user = users[rng.integers(len(users))]
        return engine.recommend(user, k=k), user

    return visit(engine, n, seed, serve, prefix="feed")


@pytest.fixture(scope="module")
def fed():
    """An engine whose feeds explore on 30% of visits, after 500 feed visits, and one loop round."""
    engine = make_engine(replace(FAST, exploration=ExplorationConfig(budget=0.3)), n_products=300)[0]
    users = shoppers_with_history(engine)
    assert len(users) >= 20
    assert visit_feeds(engine, users, 500, seed=1) > 100
    loop = RetrainLoop(engine, LOOP)
    return engine, users, loop.run_once()


def test_feeds_log_the_model_scores_the_ranker_learns_from(fed):
    engine, users, _ = fed
    feed = engine.recommend(users[0], k=8)
    logged = engine.stores.events.get_impression(feed.request_id)
    model = [i.explanation["model_score"] for i in feed.items]
    assert logged.context["base_scores"] == pytest.approx(model, abs=1e-6)
    assert logged.context["base_field"] == "model_score"
    (lst,) = join_logs([logged], surfaces=("home",))
    assert lst.base_field == "model_score" and np.allclose(lst.base_scores, model, atol=1e-6)
    (feats,) = featurize([logged], [lst], products=engine.products.get, explain=None)
    # the model's score is both the "fused" input and the sequential score, as when serving
    assert np.allclose(feats.X[:, FUSED], model, atol=1e-5)
    assert np.allclose(feats.X[:, SEQUENTIAL], model, atol=1e-5)
    newcomer = engine.recommend("never-seen-before", k=8)  # trending: no model scores to log
    assert "base_scores" not in engine.stores.events.get_impression(newcomer.request_id).context


def test_logs_without_a_field_are_category_pages_and_unknown_fields_are_not_trusted(fed):
    engine, users, _ = fed
    logged = engine.stores.events.get_impression(engine.recommend(users[1], k=4).request_id)
    older = {k: v for k, v in logged.context.items() if k != "base_field"}
    (lst,) = join_logs([logged.model_copy(update={"context": older})], surfaces=("home",))
    assert lst.base_field == "featured_score", "lists logged before the field existed were category pages"
    odd = {**logged.context, "base_field": "retrieval_score"}
    (lst,) = join_logs([logged.model_copy(update={"context": odd})], surfaces=("home",))
    assert lst.base_scores is None, "scores under a key this version cannot read are left out"


def test_the_loop_trains_and_gates_a_feed_ranker_apart_from_search_and_pages(fed):
    engine, _, report = fed
    events = list(engine.stores.events.scan(exclude_flagged=True))
    home = report.home
    assert home is not None and home.version == 1, home
    feeds = [lst for lst in join_logs(events, surfaces=("home",)) if lst.base_scores is not None]
    assert 500 <= home.lists <= len(feeds), "the model-ordered feeds, not searches or trending"
    assert home.clicked_lists > 100 and home.train_lists + home.held_out_lists <= home.clicked_lists
    assert home.curve is not None and home.curve["theta"][0] == 1.0
    assert report.browse is not None and report.browse.lists == 0, "no category page was visited"
    gate = engine.stores.registry.get("home_ranker", 1).metrics["gate"]
    assert {"ndcg10_candidate", "ndcg10_active"} <= set(gate)
    assert (engine.home_ranker is not None) == home.promoted
    off = RetrainLoop(engine, replace(LOOP, home_ranker=False)).run_once()
    assert off.home is None


def test_the_feeds_features_carry_how_often_an_item_was_passed_over(fed):
    engine, _, _ = fed
    events = list(engine.stores.events.scan())
    lists = [lst for lst in join_logs(events, surfaces=("home",)) if lst.base_scores is not None]
    feats = featurize(events, lists, products=engine.products.get, explain=None)
    assert (np.concatenate([f.X for f in feats])[:, FATIGUE] > 0).any(), "feeds show items shown before"


def test_the_learned_ranker_orders_feeds_by_what_shoppers_clicked(fed):
    engine, users, _ = fed
    v = promote_ranker(engine, "home_ranker", ranker_from_logs(engine, "home"))
    assert engine.versions["home_ranker"] == v
    without = ServingOverride(label="t/model", models={"home_ranker": None}, policy="deterministic")
    learned_gain, model_gain, discounted = [], [], []
    for user in users[:12]:
        learned = engine.recommend(user, k=10, override=replace(without, models={}))
        model = engine.recommend(user, k=10, override=without)
        assert "ltr" in learned.items[0].explanation and "ltr" not in model.items[0].explanation
        assert "home_ranker" in learned.model_version and "home_ranker" not in model.model_version
        scores = [i.score for i in learned.items]
        assert scores == sorted(scores, reverse=True)
        learned_gain.append(liked_dcg(learned.items))
        model_gain.append(liked_dcg(model.items))
        # the hand-set fatigue discount applies to the model's order only: the ranker weighs
        # being passed over itself (its "fatigue" input)
        discounted.append(any("fatigue" in i.explanation for i in model.items))
        assert not any("fatigue" in i.explanation for i in learned.items)
        logged = engine.stores.events.get_impression(learned.request_id)
        # the input it learns from next time is the model's score, not its own output
        assert logged.context["base_scores"] == pytest.approx(
            [i.explanation["model_score"] for i in learned.items], abs=1e-6
        )
    assert np.mean(learned_gain) > np.mean(model_gain), (learned_gain, model_gain)
    assert any(discounted), "these shoppers were shown items before: the model's order was discounted"
    assert parse_model_version("home_ranker:none") == {"home_ranker": None}


def test_rolling_back_the_first_feed_ranker_returns_feeds_to_the_model_order(fed):
    engine, users, _ = fed
    for version in engine.stores.registry.versions("home_ranker"):  # start from none active
        if version.status in ("active", "retired"):
            engine.stores.registry.reject("home_ranker", version.version, reason="test reset")
    engine.sync_with_stores()
    assert engine.home_ranker is None
    v = promote_ranker(engine, "home_ranker", ranker_from_logs(engine, "home"))
    assert "ltr" in engine.recommend(users[0], k=5).items[0].explanation
    off = engine.rollback("home_ranker", reason="the plain model converts better")
    assert (off.version, off.status) == (v, "rejected")
    assert engine.home_ranker is None and "home_ranker" not in engine.versions
    feed = engine.recommend(users[0], k=5)
    assert "ltr" not in feed.items[0].explanation and "home_ranker" not in feed.model_version
