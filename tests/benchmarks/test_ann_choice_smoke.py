from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import ann_choice


def test_ann_choice_smoke(tmp_path: Path):
    pd.DataFrame(
        {"product_uid": [str(i) for i in range(300)], "product_title": [f"item {i}" for i in range(300)]}
    ).to_csv(tmp_path / "products.csv", index=False)
    pd.DataFrame(
        {
            "id": range(20),
            "product_uid": ["1"] * 20,
            "product_title": ["x"] * 20,
            "search_term": [f"query {i}" for i in range(20)],
            "relevance": [2.0] * 20,
        }
    ).to_csv(tmp_path / "judgments.csv", index=False)
    out = tmp_path / "res.json"
    res = ann_choice.main(["--data-dir", str(tmp_path), "--out", str(out), "--k", "10", "--fake-encoder"])
    assert json.loads(out.read_text())["n_vectors"] == 300
    assert out.with_suffix(".md").exists()
    backends = {r["backend"]: r for r in res["results"]}
    assert backends["numpy-exact"]["recall@10"] == 1.0 and backends["faiss-flat"]["recall@10"] == 1.0
    assert backends["usearch-hnsw-f32"]["recall@10"] > 0.8
