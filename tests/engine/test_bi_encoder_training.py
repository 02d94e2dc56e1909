"""`Engine.train("bi_encoder")`: search's text encoder fine-tuned on clicked searches (tiny model, fast)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from shoploop.engine import InvalidRequest
from shoploop.engine.search_finetune import ENCODER_DIR, bi_encoder_examples
from shoploop.feedback.click_pairs import ClickPairs, click_pairs
from shoploop.feedback.training_data import LIST_EVENT_TYPES, join_logs
from shoploop.ranking.training_pairs import GradedPair
from shoploop.retrieval.config import HybridConfig
from shoploop.retrieval.hybrid import HybridSearcher
from shoploop.text.encoder import EncoderConfig, TextEncoder
from tests.engine.conftest import FAST, make_engine
from tests.text.test_finetune import tiny_sentence_transformer


def dense_config(base: str, **serving):
    # the tiny model has 64 positions: keep product texts inside them
    encoder = EncoderConfig(model_path=base, num_threads=1, max_length=32)
    settings = {"bi_encoder_minutes": 0.5, "bi_encoder_min_pairs": 20, **serving}
    return replace(FAST, search=HybridConfig(encoder=encoder), serving=replace(FAST.serving, **settings))


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-st"))


@pytest.fixture(scope="module")
def tuned(base_model: str):
    engine, _ = make_engine(dense_config(base_model))
    first = engine.versions["search"]
    version = engine.train("bi_encoder")
    return engine, first, version


def test_examples_are_clicked_positives_and_skipped_products_above_them() -> None:
    pairs = ClickPairs(
        train=[GradedPair("drill", "cordless drill", 1.0), GradedPair("drill", "drill bits", 0.0)],
        valid=[GradedPair("lamp", "desk lamp", 0.5)],
        positives=2,
        negatives=1,
        queries=2,
    )
    positives, hard = bi_encoder_examples(pairs)
    assert positives == [("drill", "cordless drill"), ("lamp", "desk lamp")]
    assert hard == {"drill": ["drill bits"]}


def test_bi_encoder_training_registers_a_search_candidate_with_its_own_encoder(tuned) -> None:
    engine, first, version = tuned
    assert version.name == "search" and version.version != first
    assert engine.versions["search"] == first  # a candidate: serving is unchanged until promoted
    path = Path(version.path)
    assert (path / ENCODER_DIR / "finetune_record.json").is_file()
    assert version.config["encoder"]["model_path"] == ENCODER_DIR  # named relative to the version
    assert version.metrics["train_pairs"] > 0 and version.metrics["hard_negative_queries"] > 0
    assert version.metrics["valid_recall@20"] >= version.metrics["valid_recall@20_before"]


def test_promoted_index_searches_with_the_fine_tuned_encoder(tuned, base_model: str) -> None:
    engine, first, version = tuned
    engine.promote("search", version.version)
    try:
        searcher = engine.searcher
        own = str((Path(version.path) / ENCODER_DIR).resolve())
        assert searcher.config.encoder.model_path == own
        # the encoder that is loaded, not only the config, is the version's own copy — not the
        # base model reused from the previous index. (Whether its weights moved depends on the
        # tiny fine-tune beating the base on validation in a dozen steps; early stopping keeps
        # the base weights when it does not, so the weights cannot be the check.)
        assert searcher.encoder._model_dir == own
        assert (Path(own) / "model.safetensors").is_file()
        text = "cordless drill with two batteries"
        saved = TextEncoder(EncoderConfig(model_path=own, num_threads=1, max_length=32))
        np.testing.assert_allclose(searcher.encoder.encode([text]), saved.encode([text]), atol=1e-5)
        assert engine.search("drill", k=5).items
        assert searcher.query_encoder.config.backend == "onnx-int8"  # its own int8 export
    finally:
        engine.promote("search", first)
    assert engine.searcher.config.encoder.model_path == base_model


def test_a_copied_version_loads_the_encoder_inside_the_copy(tuned, tmp_path: Path) -> None:
    _, _, version = tuned
    copy = tmp_path / "moved"
    shutil.copytree(version.path, copy)
    loaded = HybridSearcher.load(copy)
    assert loaded.config.encoder.model_path == str((copy / ENCODER_DIR).resolve())
    assert loaded.search("drill", k=3).items


def test_too_few_clicked_pairs_for_the_bi_encoder_is_a_clear_error(base_model: str) -> None:
    engine, _ = make_engine(dense_config(base_model, bi_encoder_min_pairs=10**9))
    with pytest.raises(InvalidRequest) as err:
        engine.train("bi_encoder")
    assert err.value.field == "events" and "at least" in err.value.reason


def test_bi_encoder_without_dense_search_names_the_setting(engine_and_bundle) -> None:
    engine, _ = engine_and_bundle  # FAST: BM25 only
    with pytest.raises(InvalidRequest) as err:
        engine.train("bi_encoder")
    assert err.value.field == "search" and "use_dense" in err.value.reason


def test_an_index_built_with_the_same_encoder_reuses_the_loaded_one(base_model: str) -> None:
    engine, _ = make_engine(dense_config(base_model))
    loaded = engine.searcher.encoder
    engine.train("search", promote=True)
    assert engine.searcher.encoder is loaded  # no second copy of the model in memory


def test_a_shop_encoding_products_with_int8_still_gets_its_fine_tuned_weights(base_model: str) -> None:
    # int8 products are only possible with the packaged model (too slow here): start on the tiny
    # model, then switch the engine's product encoder to int8 before training
    engine, _ = make_engine(dense_config(base_model))
    search = engine.config.search
    engine.config = replace(
        engine.config, search=replace(search, encoder=replace(search.encoder, backend="onnx-int8"))
    )
    version = engine.train("bi_encoder")
    # the fine-tuned weights encode the products (torch); queries use their own int8 export
    assert version.config["encoder"]["backend"] == "torch"
    assert (Path(version.path) / ENCODER_DIR / "onnx" / "model_int8.onnx").is_file()


def test_bot_flagged_shoppers_searches_are_not_fine_tuning_pairs(tuned) -> None:
    engine, _, _ = tuned
    events = engine.stores.events
    everyone = join_logs(events.scan(types=LIST_EVENT_TYPES))
    humans = join_logs(events.scan(types=LIST_EVENT_TYPES, exclude_flagged=True))
    bots = {lst.user_id for lst in everyone} - {lst.user_id for lst in humans}
    assert bots and any(lst.clicked and lst.query for lst in everyone if lst.user_id in bots)

    def text(item_id: str) -> str | None:
        return engine.products[item_id].text() if item_id in engine.products else None

    used = engine._clicked_search_pairs(valid_frac=0.0)
    assert used.positives == click_pairs(humans, text, valid_frac=0.0).positives
    assert used.positives < click_pairs(everyone, text, valid_frac=0.0).positives
