"""Smoke test: benchmarks/sequential.py runs end to end on tiny generated data."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_sequential", ROOT / "benchmarks" / "sequential.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_sequential"] = module
    spec.loader.exec_module(module)
    return module


def write_unisrec(directory: Path, n_items: int = 30, n_users: int = 60, seed: int = 0) -> None:
    """UniSRec files (0-based item tokens; train rows hold every prefix) with item text."""
    rng = np.random.default_rng(seed)
    asins = [f"A{i:04d}" for i in range(n_items)]
    (directory / "Tiny.item2index").write_text("".join(f"{a}\t{i}\n" for i, a in enumerate(asins)))
    colours = ["red", "blue", "green"]
    (directory / "Tiny.text").write_text(
        "item_id:token\ttext:token_seq\n"
        + "".join(f"{a}\t{colours[i % 3]} widget number {i}. Tools. Acme.\n" for i, a in enumerate(asins))
    )
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    train, valid, test = [header], [header], [header]
    for u in range(n_users):
        start = int(rng.integers(0, n_items))
        seq = [(start + t) % n_items for t in range(int(rng.integers(5, 9)))]
        for end in range(1, len(seq) - 2):
            train.append(f"{u}\t{' '.join(map(str, seq[:end]))}\t{seq[end]}\n")
        valid.append(f"{u}\t{' '.join(map(str, seq[:-2]))}\t{seq[-2]}\n")
        test.append(f"{u}\t{' '.join(map(str, seq[:-1]))}\t{seq[-1]}\n")
    (directory / "Tiny.train.inter").write_text("".join(train))
    (directory / "Tiny.valid.inter").write_text("".join(valid))
    (directory / "Tiny.test.inter").write_text("".join(test))


def test_sequential_benchmark_smoke(tmp_path: Path) -> None:
    data = tmp_path / "tiny"
    data.mkdir()
    write_unisrec(data)
    out = tmp_path / "out" / "sequential_tiny.json"
    bench = load_benchmark()
    result = bench.main(
        [
            "--format",
            "unisrec",
            "--data-dir",
            str(data),
            "--name",
            "Tiny",
            "--budget-minutes",
            "0.2",
            "--out",
            str(out),
            "--cold-start-frac",
            "0.2",
            "--sasrec-json",
            '{"hidden": 16, "n_blocks": 1, "n_heads": 1, "max_len": 8, "train": {"epochs": 3}}',
            "--latency-items",
            "500",
            "--refit-on-valid",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    saved = json.loads(out.read_text())
    base = {"pop", "itemknn", "ease", "sasrec-id", "sasrec-text"}
    assert set(saved["models"]) == base | {f"{m}+refit" for m in base}
    for row in saved["models"].values():
        assert 0.0 <= row["ndcg@10"] <= 1.0
        assert row["train_seconds"] >= 0.0
    # the planted "i -> i+1" chains are easy for item-kNN
    assert saved["models"]["itemknn"]["recall@10"] > saved["models"]["pop"]["recall@10"]
    assert saved["cold_start"]["removed_items"] == 6
    assert set(saved["cold_start"]["models"]) == base
    assert saved["latency"]["recommend_one_p99_ms"] > 0
    md = out.with_suffix(".md").read_text()
    assert "| sasrec-text |" in md
    assert result["n_items"] == 30
