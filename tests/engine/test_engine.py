from collections import Counter

import pytest

from shoploop.domain import ImpressionEvent, Product
from shoploop.engine import InvalidRequest, NotFound
from tests.engine.conftest import make_engine


@pytest.fixture
def engine():
    # function-scoped: these tests change state
    return make_engine()[0]


def impressions(engine):
    return [e for e in engine.stores.events.scan(types=["impression"]) if isinstance(e, ImpressionEvent)]


def test_search_returns_a_logged_list(engine_and_bundle):
    engine, _ = engine_and_bundle
    served = engine.search("drill", user_id="shopper-1", k=5)
    assert served.request_id
    assert 1 <= len(served.items) <= 5
    assert [i.position for i in served.items] == list(range(1, len(served.items) + 1))
    logged = engine.stores.events.get_impression(served.request_id)
    assert logged is not None
    assert logged.surface == "search"
    assert logged.query == "drill"
    assert [s.item_id for s in logged.items] == [i.item_id for i in served.items]
    assert all(s.propensity == 1.0 for s in logged.items)  # budget 0: deterministic
    assert served.items[0].explanation["retrievers"]
    assert served.understood_query["original"] == "drill"


def test_every_surface_answers_with_a_request_id(engine_and_bundle):
    engine, bundle = engine_and_bundle
    some_user = next(e.user_id for e in bundle.events if e.type == "purchase")
    some_item = engine.search("drill", k=1).items[0].item_id
    for served in (
        engine.recommend(some_user, k=5),
        engine.recommend("never-seen-before", k=5),
        engine.similar(some_item, k=5),
        engine.bought_together(some_item, k=5),
        engine.trending(k=5),
    ):
        assert served.request_id
        assert len(served.items) <= 5
        assert all(i.reasons for i in served.items)
        assert some_item not in [i.item_id for i in served.items] or served.surface in ("home", "trending")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda e: e.search("drill", k=0), "k"),
        (lambda e: e.search("drill", k=10_000), "k"),
        (lambda e: e.search("   "), "query"),
        (lambda e: e.search(""), "query"),
        (lambda e: e.search("drill", filters={"min_price": -1}), "filters"),
        (lambda e: e.search("drill", filters={"colour": "red"}), "filters"),
        (lambda e: e.search("drill", page=0), "page"),
        (lambda e: e.recommend("u", k=-1), "k"),
    ],
)
def test_bad_input_names_the_field(engine_and_bundle, call, field):
    engine, _ = engine_and_bundle
    with pytest.raises(InvalidRequest) as err:
        call(engine)
    assert err.value.field == field


@pytest.mark.parametrize(
    "query", ["x" * 10_000, "perceuse sans fil à percussion", "无线电钻", "🙂 drill", "l bracket"]
)
def test_odd_queries_never_crash(engine_and_bundle, query):
    engine, _ = engine_and_bundle
    served = engine.search(query, k=10)
    assert served.request_id


def test_unknown_item_is_not_found(engine_and_bundle):
    engine, _ = engine_and_bundle
    with pytest.raises(NotFound):
        engine.similar("no-such-item")


def test_upserted_product_is_findable_and_deleted_one_never_returned(engine):
    engine.upsert_products([Product(item_id="NEW-1", title="Zyxquartz telescope mount", price=99.0)])
    assert engine.search("zyxquartz", k=3).items[0].item_id == "NEW-1"
    engine.delete_products(["NEW-1"])
    assert "NEW-1" not in [i.item_id for i in engine.search("zyxquartz telescope", k=50).items]
    assert "NEW-1" not in [i.item_id for i in engine.trending(k=100).items]


def test_click_changes_that_shoppers_next_response(engine):
    first = engine.search("jacket", user_id="fresh-shopper", k=10)
    before = engine.recommend("fresh-shopper", k=10)
    assert before.items[0].reasons[0].startswith("trending")  # unknown shopper: fallback
    clicked = first.items[-1]
    outcomes = engine.ingest_events(
        [
            {
                "type": "click",
                "user_id": "fresh-shopper",
                "item_id": clicked.item_id,
                "request_id": first.request_id,
                "position": clicked.position,
                "timestamp": "2026-01-01T00:00:00+00:00",
            }
        ]
    )
    # the demo store's clock ends in 2025; this click is in the past relative to now: accepted
    assert outcomes[0].status == "accepted", outcomes[0].reason
    after = engine.recommend("fresh-shopper", k=10)
    assert [i.item_id for i in after.items] != [i.item_id for i in before.items]
    assert after.items[0].reasons[0].startswith("because you viewed")


def test_starting_twice_counts_nothing_twice(engine):
    seen, suggestions = engine.online.events_seen, engine.suggest("", k=5)
    assert engine.start() is engine
    assert engine.online.events_seen == seen
    assert engine.suggest("", k=5) == suggestions


def test_delete_user_erases_events_and_state(engine):
    user = next(e.user_id for e in engine.stores.events.scan(types=["purchase"]))
    assert engine.online.known_user(user)
    receipt = engine.delete_user(user)
    assert receipt["events_deleted"] > 0
    assert not engine.online.known_user(user)
    assert not list(engine.stores.events.scan(user_id=user))


def test_promote_and_rollback_restore_answers_exactly(engine):
    before = [i.item_id for i in engine.recommend("ghost", k=10).items]
    v1 = engine.stores.registry.active("recommender")
    engine.train("recommender")  # v2 candidate, same data
    v2 = engine.stores.registry.versions("recommender")[-1]
    engine.promote("recommender", v2.version)
    assert engine.versions["recommender"] == v2.version
    restored = engine.rollback("recommender")
    assert restored.version == v1.version
    assert [i.item_id for i in engine.recommend("ghost", k=10).items] == before


def test_exploration_logs_propensities_that_are_probabilities():
    from dataclasses import replace

    from tests.engine.conftest import FAST

    engine, _ = make_engine(replace(FAST, exploration=FAST.exploration.__class__(budget=1.0)))
    policies = Counter()
    for _ in range(20):
        served = engine.search("drill", k=8)
        policies[served.policy] += 1
        assert all(0 < i.propensity <= 1 for i in served.items)
        assert any(i.propensity < 1 for i in served.items[:6])
    assert len(policies) == 1
    assert next(iter(policies)).startswith("pl-explore")


def test_trending_follows_fresh_purchases_after_its_refresh(engine):
    from datetime import UTC, datetime

    item = engine.trending(k=50).items[-1].item_id
    now = datetime.now(UTC).isoformat()
    rows = [
        {
            "type": "purchase",
            "user_id": f"buyer-{n}",
            "timestamp": now,
            "items": [{"item_id": item, "quantity": 1, "price": 10.0}],
        }
        for n in range(30)
    ]
    assert all(o.status == "accepted" for o in engine.ingest_events(rows))
    engine._trending = None  # the snapshot is at most trending_refresh_seconds old; expire it now
    assert engine.trending(k=3).items[0].item_id == item


def test_too_few_clicks_for_cross_encoder_training_is_a_clear_error():
    from dataclasses import replace

    from tests.engine.conftest import FAST

    strict = replace(FAST, serving=replace(FAST.serving, cross_encoder_min_pairs=10**9))
    engine, _ = make_engine(strict)
    with pytest.raises(InvalidRequest) as err:
        engine.train("cross_encoder")
    assert err.value.field == "events"
    assert "at least" in err.value.reason


def test_active_cross_encoder_rescores_the_head_of_search(engine, tmp_path):
    from shoploop.engine.training import register
    from shoploop.ranking.cross_encoder import CrossEncoderReranker
    from tests.ranking.test_cross_encoder import build_tiny_bert, tiny_config, toy_pairs

    model = CrossEncoderReranker(tiny_config(build_tiny_bert(tmp_path / "bert"), epochs=1)).fit(
        toy_pairs(0), toy_pairs(1)
    )
    version = register(engine.stores, "cross_encoder", model.save, metrics={}, config={})
    engine.promote("cross_encoder", version.version)
    served = engine.search("drill", k=40)
    head = served.items[: engine.config.serving.cross_encoder_top]
    assert all("cross_encoder" in item.explanation for item in head)
    assert all("cross_encoder" not in item.explanation for item in served.items[len(head) :])
    assert engine.versions["cross_encoder"] == version.version


def test_exploration_is_reproducible_for_the_same_seed_and_traffic():
    from dataclasses import replace

    from shoploop.feedback.exploration import ExplorationConfig
    from tests.engine.conftest import FAST

    config = replace(FAST, exploration=ExplorationConfig(budget=0.5))
    runs = []
    for _ in range(2):
        engine, _ = make_engine(config)
        runs.append([[i.item_id for i in engine.search("drill", k=6).items] for _ in range(12)])
    assert runs[0] == runs[1]
    assert len({tuple(r) for r in runs[0]}) > 1  # it did explore


def test_served_lists_say_when_they_explored_and_the_log_keeps_it():
    from dataclasses import replace

    from shoploop.feedback.exploration import ExplorationConfig
    from tests.engine.conftest import FAST

    engine, _ = make_engine(replace(FAST, exploration=ExplorationConfig(budget=0.5)))
    before = len(impressions(engine))
    served = [engine.search("drill", k=6) for _ in range(40)]
    logged = impressions(engine)[before:]
    assert [s.explored for s in served] == [bool(e.context.get("explored")) for e in logged]
    assert 5 < sum(s.explored for s in served) < 35
    # A list the policy did not shuffle is in the ranker's order: the same every time.
    greedy = {tuple(i.item_id for i in s.items) for s in served if not s.explored}
    assert len(greedy) == 1


def test_a_probe_shows_the_item_below_the_page_near_the_top_and_logs_it():
    from dataclasses import replace

    from shoploop.feedback.exploration import ExplorationConfig
    from tests.engine.conftest import FAST

    greedy_engine, _ = make_engine(FAST)
    greedy = [i.item_id for i in greedy_engine.search("drill", k=3).items]
    cfg = ExplorationConfig(budget=1.0, probe_share=1.0, probe_slot=2, probe_rank=2)
    engine, _ = make_engine(replace(FAST, exploration=cfg))
    served = engine.search("drill", k=2)
    shown = [i.item_id for i in served.items]
    # the ranker's third item, below a page of two, now sits at slot 2
    assert len(greedy) == 3 and shown == [greedy[0], greedy[2]]
    assert served.explored and all(i.propensity == 1.0 for i in served.items)
    logged = impressions(engine)[-1]
    assert logged.context["explored"] == {"probe": {"rank": 2, "slot": 1}}


def test_the_engine_stamps_served_lists_with_its_clock():
    from datetime import UTC, datetime, timedelta

    from shoploop.evaluation.simulator import SimulatedClock

    engine, _ = make_engine()
    start = datetime(2030, 5, 1, tzinfo=UTC)
    engine.clock = SimulatedClock(start, timedelta(seconds=5))
    engine.search("drill", k=3)
    engine.recommend("user-0001", k=3)
    stamps = [e.timestamp for e in impressions(engine) if e.timestamp >= start]
    assert stamps == [start, start + timedelta(seconds=5)]


def test_clicks_on_a_query_lift_that_item_for_the_same_query(engine):
    from datetime import UTC, datetime

    query = "Cordless  DRILL "
    first = engine.search(query, k=10)
    target = first.items[-1]
    now = datetime.now(UTC).isoformat()
    clicks = []
    for n in range(15):
        served = engine.search(query, k=10, user_id=f"s{n}")
        pos = next(i.position for i in served.items if i.item_id == target.item_id)
        clicks.append(
            {
                "type": "click",
                "user_id": f"s{n}",
                "item_id": target.item_id,
                "request_id": served.request_id,
                "position": pos,
                "timestamp": now,
            }
        )
    assert all(o.status == "accepted" for o in engine.ingest_events(clicks))
    again = engine.search(query, k=10)
    lifted = next(i for i in again.items if i.item_id == target.item_id)
    assert lifted.explanation["query_ctr_lift"] > 0
    assert lifted.position < target.position


def test_home_feed_moves_past_items_the_shopper_keeps_passing_over():
    engine, _ = make_engine()
    shopper = next(e.user_id for e in engine.stores.events.scan(types=["purchase"]))
    first = [i.item_id for i in engine.recommend(shopper, k=5).items]
    second = engine.recommend(shopper, k=5)
    assert second.items[0].item_id != first[0]  # the top item was shown once and ignored
    assert set(first) - {i.item_id for i in second.items}  # fresh candidates came into view
    tired = [i for i in second.items if "fatigue" in i.explanation]
    assert all(i.item_id in first for i in tired)
    scores = [i.score for i in second.items]
    assert scores == sorted(scores, reverse=True)  # still served in score order

    clicked = second.items[0]
    click = {"type": "click", "user_id": shopper, "item_id": clicked.item_id, "request_id": second.request_id}
    outcome = engine.ingest_events([{**click, "timestamp": "2026-01-01T00:00:00+00:00"}])[0]
    assert outcome.status == "accepted", outcome.reason
    assert clicked.item_id not in engine.online.profile(shopper).fatigue  # engaging clears it


def test_fatigue_step_zero_serves_the_models_order_every_time():
    from dataclasses import replace

    from tests.engine.conftest import FAST

    engine, _ = make_engine(replace(FAST, serving=replace(FAST.serving, fatigue_rank_step=0.0)))
    shopper = next(e.user_id for e in engine.stores.events.scan(types=["purchase"]))
    feeds = [[i.item_id for i in engine.recommend(shopper, k=5).items] for _ in range(3)]
    assert feeds[0] == feeds[1] == feeds[2]


def test_served_search_items_carry_the_retrievers_explanation(engine):
    served = engine.search("cordless drill", k=5)
    top = served.items[0].explanation
    # The searcher's per-hit detail (built only for shown items) comes first, then the engine's.
    assert list(top)[:4] == ["matched_terms", "retrievers", "scores", "category_boost"]
    assert "drill" in top["matched_terms"] and top["retrievers"]["bm25"]["rank"] >= 1
    assert isinstance(top["retrieval_score"], float)
    assert all("retrievers" in item.explanation for item in served.items)


def test_candidate_detail_is_merged_once_and_survives_rules():
    from shoploop.ranking.rules import Candidate, RuleContext, apply_rules

    calls = []

    def detail():
        calls.append(1)
        return {"matched_terms": ["drill"], "note": "searcher"}

    from shoploop.domain import Product
    from shoploop.ranking.rules import Rule

    cand = Candidate("p1", 1.0, {"note": "engine"}, detail=detail)
    pin = Rule(rule_id="r", name="promo", kind="pin", item_id="p2", position=1)
    products = {"p1": Product(item_id="p1", title="a"), "p2": Product(item_id="p2", title="b")}
    out = apply_rules([cand], [pin], RuleContext(surface="search"), products).items  # copies candidates
    assert [c.item_id for c in out] == ["p2", "p1"] and calls == []
    assert out[1].full_explanation() == {"matched_terms": ["drill"], "note": "engine"}  # engine wins
    assert out[1].full_explanation() is out[1].explanation and calls == [1]


def test_a_querys_exploration_budget_shrinks_as_it_is_served_and_propensities_follow():
    from dataclasses import replace

    import numpy as np

    from shoploop.feedback.exploration import ExplorationConfig, ExplorationPolicy, slot_marginals
    from tests.engine.conftest import FAST

    cfg = ExplorationConfig(budget=1.0, window=4, max_promotion=3, budget_half_servings=2.0)
    engine, _ = make_engine(replace(FAST, exploration=cfg))
    served = [engine.search("drill", k=6) for _ in range(40)]
    assert served[0].explored  # budget 1 for a query never served
    assert sum(s.explored for s in served[:5]) > sum(s.explored for s in served[-5:])
    assert engine.online.query_served("  DRILL ") == pytest.approx(40, rel=1e-3)  # key normalised
    # A list left in the ranker's order logs P(slot) = (1 - b_n) + b_n * M[slot, slot], with
    # b_n = 2 / (2 + n) after n earlier servings (the clock barely moves: no decay of n).
    policy = ExplorationPolicy(cfg)
    checked = 0
    for n, lst in enumerate(served):
        if lst.explored:
            continue
        scores = np.array([i.score for i in lst.items])
        m = slot_marginals(*policy.distribution(scores))
        b = cfg.budget_for(n)
        assert [i.propensity for i in lst.items[:4]] == pytest.approx((1 - b) + b * np.diag(m), rel=1e-4)
        checked += 1
    assert checked > 10
    assert engine.search("saw", k=6).explored  # another query starts with the full budget


def test_the_learned_ranker_is_held_to_the_configured_promotion_bound(engine):
    from dataclasses import replace

    seen = []

    class RecordingRanker:  # stands in for LearnedRanker: records the settings, keeps the order
        def rerank(self, cands, ctx, *, max_promotion=None, explain_top=None):
            seen.append((max_promotion, explain_top))
            return list(cands)

    engine.ranker = RecordingRanker()
    engine.search("drill", k=5)
    serving = replace(engine.config.serving, ranker_max_promotion=3, ranker_explain_top=7)
    engine.config = replace(engine.config, serving=serving)
    engine.search("drill", k=5)
    assert seen == [(None, 3), (3, 7)]


def test_a_negative_promotion_bound_is_refused_by_name():
    from shoploop.engine.config import ServingSettings

    with pytest.raises(ValueError, match="ranker_max_promotion"):
        ServingSettings(ranker_max_promotion=-1)
    with pytest.raises(ValueError, match="ranker_explain_top"):
        ServingSettings(ranker_explain_top=-1)
