"""`gated_finetune`: a search model fine-tuned on older clicks, judged on the newest (tiny model)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shoploop.engine import InvalidRequest
from shoploop.engine.finetune_gate import gated_finetune
from shoploop.feedback.search_gate import SearchGateConfig, recent_holdout
from shoploop.feedback.training_data import LIST_EVENT_TYPES, join_logs
from tests.engine.conftest import make_engine
from tests.engine.test_bi_encoder_training import dense_config
from tests.text.test_finetune import tiny_sentence_transformer


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-st"))


@pytest.fixture(scope="module")
def engine(base_model: str):
    return make_engine(dense_config(base_model))[0]


@pytest.mark.parametrize("replay", ["shown", "catalog"])
def test_a_candidate_the_gate_accepts_goes_live_with_its_evidence(engine, replay: str) -> None:
    before = engine.versions["search"]
    # anything passes
    lenient = SearchGateConfig(min_lists=10, min_gain=-1.0, tolerance=2.0, replay=replay)  # type: ignore[arg-type]
    version, decision = gated_finetune(engine, "bi_encoder", lenient)
    assert decision.promote and decision.reason.startswith("better")
    assert decision.metrics["replay"] == replay
    assert engine.versions["search"] == version.version != before  # served from now on
    stored = engine.stores.registry.get("search", version.version)
    assert stored.metrics["gate"]["held_out_searches"] >= 10
    assert "replay NDCG@10" in stored.metrics["gate_reason"]
    engine.promote("search", before)


def test_a_candidate_the_gate_refuses_is_rejected_and_serving_is_unchanged(engine) -> None:
    before = engine.versions["search"]
    strict = SearchGateConfig(min_lists=10, min_gain=1.0)  # nothing can gain a whole NDCG
    version, decision = gated_finetune(engine, "bi_encoder", strict)
    assert not decision.promote and decision.reason.startswith("no gain")
    assert engine.stores.registry.get("search", version.version).status == "rejected"
    assert engine.versions["search"] == before


def test_the_candidate_learns_only_from_searches_before_the_held_out_ones(engine) -> None:
    lists = join_logs(engine.stores.events.scan(types=LIST_EVENT_TYPES))
    earlier, held, cut = recent_holdout(lists, 0.2)
    assert cut is not None and held and earlier
    everything = engine.train("bi_encoder")
    until_cut = engine.train("bi_encoder", until=datetime.fromtimestamp(cut, tz=UTC))
    assert until_cut.metrics["train_pairs"] < everything.metrics["train_pairs"]


def test_too_few_searches_to_hold_out_fails_before_any_training(engine) -> None:
    versions = len(engine.stores.registry.versions("search"))
    with pytest.raises(InvalidRequest) as err:
        gated_finetune(engine, "bi_encoder", SearchGateConfig(min_lists=10**6))
    assert err.value.field == "events" and "held out" in err.value.reason
    assert len(engine.stores.registry.versions("search")) == versions


def test_only_the_fine_tuned_search_models_can_be_gated(engine) -> None:
    with pytest.raises(InvalidRequest) as err:
        gated_finetune(engine, "recommender")
    assert err.value.field == "name"


def test_the_retrain_loop_fine_tunes_behind_the_gate_when_enough_searches_arrived(engine) -> None:
    from shoploop.feedback.retrain import RetrainConfig, RetrainLoop

    before = engine.versions["search"]
    config = RetrainConfig(
        min_train_lists=10**9,  # no ranker this round: only the fine-tune is exercised
        finetune_every_clicked_searches=1,
        search_gate=SearchGateConfig(min_lists=10, min_gain=1.0),
    )
    loop = RetrainLoop(engine, config)
    report = loop.run_once()
    [entry] = report.finetune
    assert entry["model"] == "bi_encoder" and not entry["promoted"] and "no gain" in entry["reason"]
    assert engine.versions["search"] == before
    assert loop.run_once().finetune == []  # no new clicked searches since: not due again


def test_replaying_a_shown_list_reorders_exactly_its_products_by_the_searchers_scores(engine) -> None:
    [lst, *_] = [x for x in join_logs(engine.stores.events.scan(types=LIST_EVENT_TYPES)) if x.query]
    shown = list(reversed(lst.items))
    order = engine.replay_order(lst.query, [*shown, "no-such-product"], engine.searcher, None)
    assert order[-1] == "no-such-product"  # gone from the index: last, not dropped
    assert sorted(order[:-1]) == sorted(shown)
    scores = dict(zip(shown, engine.searcher.score_items(lst.query, shown), strict=True))
    assert [scores[i] for i in order[:-1]] == sorted(scores.values(), reverse=True)
