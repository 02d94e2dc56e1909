"""A/B variants change what search serves: re-ranker versions swapped per request, exploration off."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoploop.engine.variants import (
    SWAPPABLE_MODELS,
    ServingOverride,
    VariantSpecError,
    parse_model_version,
    serving_override,
)
from tests.engine.conftest import FAST, make_engine


def test_parse_model_version_reads_versions_and_none():
    assert parse_model_version("ranker:v3+cross_encoder:none") == {"ranker": 3, "cross_encoder": None}
    assert parse_model_version("ranker:12") == {"ranker": 12}
    assert parse_model_version(None) == parse_model_version("  ") == {}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("search:v2", "cannot differ per variant"),
        ("recommender:none", "cannot be 'none'"),
        ("ranker", "is not 'name:vN'"),
        ("ranker:vx", "is not 'name:vN'"),
        ("ranker:v1+ranker:v2", "named twice"),
    ],
)
def test_bad_model_versions_name_the_field_and_the_problem(text, why):
    with pytest.raises(VariantSpecError) as err:
        parse_model_version(text)
    assert err.value.field == "model_version" and why in err.value.reason


def test_policy_must_be_known_and_a_no_op_variant_is_no_override():
    with pytest.raises(VariantSpecError) as err:
        serving_override("e/b", None, "greedy")
    assert err.value.field == "policy"
    assert serving_override("e/a", None, None) is None
    assert serving_override("e/a", "", "explore") is None
    assert serving_override("e/b", None, "deterministic") == ServingOverride("e/b", {}, "deterministic")


@given(
    st.dictionaries(
        st.sampled_from([m for m in SWAPPABLE_MODELS if m != "recommender"]),
        st.one_of(st.none(), st.integers(0, 10**6)),
        min_size=1,
    ),
    st.booleans(),
)
def test_model_version_round_trips(models, with_v):
    text = "+".join(
        f"{n}:{'none' if v is None else ('v' if with_v else '') + str(v)}" for n, v in models.items()
    )
    assert parse_model_version(text) == models


@pytest.fixture(scope="module")
def engine_with_two_cross_encoders(tmp_path_factory):
    from shoploop.engine.training import register
    from shoploop.feedback.exploration import ExplorationConfig
    from shoploop.ranking.cross_encoder import CrossEncoderReranker
    from tests.ranking.test_cross_encoder import build_tiny_bert, tiny_config, toy_pairs

    engine, _ = make_engine(replace(FAST, exploration=ExplorationConfig(budget=1.0)))
    tmp = tmp_path_factory.mktemp("ce")
    versions = []
    for seed, epochs in ((0, 1), (1, 3)):
        bert = build_tiny_bert(tmp / f"bert{seed}")
        model = CrossEncoderReranker(replace(tiny_config(bert, epochs=epochs), seed=seed)).fit(
            toy_pairs(0), toy_pairs(1)
        )
        versions.append(register(engine.stores, "cross_encoder", model.save, metrics={}, config={}).version)
    engine.promote("cross_encoder", versions[0])
    return engine, versions


def _ce_scores(served):
    return {i.item_id: i.explanation.get("cross_encoder") for i in served.items}


def test_a_variant_serves_another_cross_encoder_version_or_none(engine_with_two_cross_encoders):
    engine, (v1, v2) = engine_with_two_cross_encoders
    active = engine.search("drill", k=10)
    assert f"cross_encoder:v{v1}" in active.model_version
    assert any(s is not None for s in _ce_scores(active).values())

    without = engine.search("drill", k=10, override=ServingOverride("e/a", {"cross_encoder": None}))
    assert "cross_encoder" not in without.model_version
    assert all(s is None for s in _ce_scores(without).values())

    other = engine.search("drill", k=10, override=ServingOverride("e/b", {"cross_encoder": v2}))
    assert f"cross_encoder:v{v2}" in other.model_version
    mine, theirs = _ce_scores(active), _ce_scores(other)
    shared = [i for i in mine if i in theirs and mine[i] is not None and theirs[i] is not None]
    assert shared and any(abs(mine[i] - theirs[i]) > 1e-6 for i in shared)  # a different model scored
    # The active model is untouched by the variant's.
    assert engine.versions["cross_encoder"] == v1
    # Logged impressions say which models served them (off-policy evaluation reads this).
    logged = engine.stores.events.get_impression(other.request_id)
    assert logged is not None and logged.model_version == other.model_version


def test_an_unknown_version_is_a_clear_error(engine_with_two_cross_encoders):
    engine, _ = engine_with_two_cross_encoders
    with pytest.raises(VariantSpecError) as err:
        engine.search("drill", k=5, override=ServingOverride("e/b", {"cross_encoder": 999}))
    assert err.value.field == "model_version" and "no cross_encoder v999" in err.value.reason


def test_a_damaged_variant_artifact_is_a_clear_error_once(engine_with_two_cross_encoders, tmp_path):
    import shutil

    from shoploop.engine.training import register

    engine, _ = engine_with_two_cross_encoders
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "junk.txt").write_text("not a model")
    version = register(
        engine.stores, "cross_encoder", lambda d: shutil.copytree(tmp_path / "broken", d, dirs_exist_ok=True),
        metrics={}, config={},
    ).version  # fmt: skip
    broken = ServingOverride("e/b", {"cross_encoder": version})
    for _ in range(2):  # the second time from the remembered failure, without loading again
        with pytest.raises(VariantSpecError) as err:
            engine.search("drill", k=5, override=broken)
        assert err.value.field == "model_version" and "could not be loaded" in err.value.reason
    engine.forget_variant_models()
    assert not engine._variant_failures


def test_a_deterministic_variant_never_explores(engine_with_two_cross_encoders):
    engine, _ = engine_with_two_cross_encoders
    calm = ServingOverride("e/b", {}, "deterministic")
    lists = [engine.search("drill", k=6, override=calm) for _ in range(8)]
    assert {s.policy for s in lists} == {"deterministic"}
    assert len({tuple(i.item_id for i in s.items) for s in lists}) == 1
    assert all(i.propensity == 1.0 for s in lists for i in s.items)
    explored = [engine.search("drill", k=6) for _ in range(8)]
    assert {s.policy for s in explored} != {"deterministic"}  # budget 1.0: the default explores


def test_a_variant_serves_the_home_feed_from_another_recommender_version():
    from shoploop.engine import RecommenderSettings
    from shoploop.engine.training import collect_interactions, register, train_recommender

    engine, bundle = make_engine()
    products = list(engine.stores.catalog.iter_products())
    interactions = collect_interactions(engine.stores.events.scan(exclude_flagged=True))
    other, metrics = train_recommender(
        products, interactions, RecommenderSettings(kind="popularity"), text_vectors=None, seed=0
    )
    v2 = register(engine.stores, "recommender", other.save, metrics=metrics, config={}).version
    index = engine.recs.items
    # A shopper with history the recommender knows (others get the trending fallback); sorted
    # so the pick does not depend on the hash seed.
    shopper = next(
        u
        for u in sorted({e.user_id for e in bundle.events})
        if any(i in index for i in engine.online.profile(u).recent_items)
    )

    active = engine.recommend(shopper, k=5)
    swapped = engine.recommend(shopper, k=5, override=ServingOverride("e/b", {"recommender": v2}))
    assert {i.explanation["model"] for i in active.items} == {"item_knn"}
    assert {i.explanation["model"] for i in swapped.items} == {"popularity"}
    assert f"recommender:v{v2}" in swapped.model_version and f"recommender:v{v2}" not in active.model_version
    assert engine.versions["recommender"] != v2  # the active model did not change
