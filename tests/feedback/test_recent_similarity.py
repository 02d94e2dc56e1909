"""The rankers' "similar to recently viewed" feature reads the search index's text vectors, the
same way when the loop trains a ranker from the log and when the engine serves with it."""

from __future__ import annotations

import numpy as np
import pytest

from shoploop.feedback.features import FEATURE_NAMES, FeatureAssembler
from shoploop.feedback.training_data import featurize, join_logs
from tests.engine.conftest import make_engine
from tests.engine.test_bi_encoder_training import dense_config
from tests.feedback.conftest import promote_ranker, ranker_from_logs
from tests.feedback.test_home_ranker import visit_feeds
from tests.text.test_finetune import tiny_sentence_transformer

RECENT = FEATURE_NAMES.index("recent_similarity")


@pytest.fixture(scope="module")
def dense_engine(tmp_path_factory: pytest.TempPathFactory):
    base = tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-st"))
    return make_engine(dense_config(base))[0]


def _shopper_with_history(engine) -> str:
    users = sorted({e.user_id for e in engine.stores.events.scan() if e.type == "view"})
    return next(u for u in users if len(engine.online.profile(u).recent_items) >= 2)


def test_item_vectors_are_the_search_index_text_vectors(dense_engine):
    engine = dense_engine
    item = next(iter(engine.products))
    vec = engine.item_vector(item)
    assert vec is not None and vec.ndim == 1
    assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-4), "cosine needs unit vectors"
    assert engine.item_vector("no-such-product") is None


def test_training_features_score_similarity_to_the_shoppers_recent_views(dense_engine):
    engine = dense_engine
    user = _shopper_with_history(engine)
    feed = engine.recommend(user, k=6)
    events = list(engine.stores.events.scan())
    lst = next(x for x in join_logs(events, surfaces=("home",)) if x.request_id == feed.request_id)
    (with_vectors,) = featurize(
        events, [lst], products=engine.products.get, explain=None, item_vector=engine.item_vector
    )
    (without,) = featurize(events, [lst], products=engine.products.get, explain=None)
    assert (without.X[:, RECENT] == 0).all()
    # by hand: the best cosine between each shown item and the shopper's last ten views, as
    # they were when the feed was served (the log replayed up to that impression)
    recent = engine.online.profile(user).recent_items[-10:]
    views = np.stack([engine.item_vector(i) for i in recent])
    expected = [float(np.max(views @ engine.item_vector(i))) for i in lst.items]
    assert with_vectors.X[:, RECENT] == pytest.approx(expected, abs=1e-5)
    assert np.abs(with_vectors.X[:, RECENT]).max() > 0


def test_serving_gives_the_ranker_the_same_vectors(dense_engine, monkeypatch):
    engine = dense_engine
    seen = []
    original = FeatureAssembler.transform

    def spy(self, item_ids, explanations, ctx):
        seen.append(ctx)
        return original(self, item_ids, explanations, ctx)

    monkeypatch.setattr(FeatureAssembler, "transform", spy)
    user = _shopper_with_history(engine)
    visit_feeds(engine, [user], 60, seed=3)
    promote_ranker(engine, "home_ranker", ranker_from_logs(engine, "home"))
    seen.clear()
    engine.recommend(user, k=5)
    assert seen and seen[-1].item_vector == engine.item_vector and seen[-1].surface == "home"
