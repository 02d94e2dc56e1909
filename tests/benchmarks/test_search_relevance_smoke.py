from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import search_relevance


def _data(tmp: Path) -> None:
    rng = np.random.default_rng(0)
    nouns = ["drill", "hammer", "paint", "hose", "bracket", "shower", "sofa", "lamp", "saw", "tile"]
    adjs = ["cordless", "white", "steel", "garden", "angle", "rain", "leather", "led", "circular", "ceramic"]
    titles = [f"{adjs[i % 10]} {nouns[(i * 7) % 10]} model {i}" for i in range(120)]
    pd.DataFrame({"product_uid": [str(100 + i) for i in range(120)], "product_title": titles}).to_csv(
        tmp / "products.csv", index=False
    )
    rows = []
    for qi in range(40):
        a, n = adjs[qi % 10], nouns[(qi * 3) % 10]
        q = f"{a} {n}" if qi < 20 else f"{n} {qi}"
        for j in rng.choice(120, 5, replace=False):
            rel = 3.0 if (a in titles[j] and n in titles[j]) else float(rng.choice([1.0, 1.67, 2.33]))
            rows.append(
                {
                    "id": len(rows),
                    "product_uid": str(100 + j),
                    "product_title": titles[j],
                    "search_term": q,
                    "relevance": rel,
                }
            )
    pd.DataFrame(rows).to_csv(tmp / "judgments.csv", index=False)


CE_ROWS = ("hybrid+cross-encoder", "hybrid+cross-encoder-only")


def test_search_relevance_smoke(tmp_path: Path):
    from tests.ranking.test_cross_encoder import build_tiny_bert

    _data(tmp_path)
    out = tmp_path / "res.json"
    res = search_relevance.main(
        [
            "--data-dir",
            str(tmp_path),
            "--out",
            str(out),
            "--fake-encoder",
            "--max-tune-queries",
            "10",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--work-dir",
            str(tmp_path / "work"),
            "--ce-model",
            build_tiny_bert(tmp_path / "tiny-ce"),
            "--ce-minutes",
            "0.1",
        ]
    )
    saved = json.loads(out.read_text())
    names = [r["system"] for r in saved["systems"]]
    assert names[:2] == ["bm25s-defaults", "bm25-ours"] and "hybrid-learned" in names
    for r in saved["systems"]:
        assert 0.0 <= r["ndcg@10"] <= 1.0 and 0.0 <= r["pool_ndcg@10"] <= 1.0
    assert out.with_suffix(".md").read_text().startswith("# Search relevance")
    assert not [n for n in saved["notes"] if "failed" in n], saved["notes"]
    blended, alone = (next(r for r in saved["systems"] if r["system"] == n) for n in CE_ROWS)
    assert 0.0 <= blended["blend_weight"] <= 1.0 and alone["blend_weight"] == 1.0
    assert blended["latency_p99_ms"] == alone["latency_p99_ms"]  # one scoring pass serves both rows
    assert res["n_test_queries"] > 0 and res["n_train_queries"] > res["n_test_queries"]
