"""Smoke test: benchmarks/sequential.py runs end to end on tiny generated data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.benchmarks.loader import load_benchmark

ROOT = Path(__file__).resolve().parents[2]


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
    bench = load_benchmark("sequential")
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
    base = {
        "pop",
        "itemknn",
        "ease",
        "mf-als",
        "mf-bpr",
        "sasrec-id",
        "sasrec-text",
        "sasrec-text+ease",
        "sasrec-id+ease",
    }
    assert set(saved["models"]) == base | {f"{m}+refit" for m in base}
    for name, row in saved["models"].items():
        assert 0.0 <= row["ndcg@10"] <= 1.0
        assert row["train_seconds"] >= 0.0
        if not name.endswith("+refit"):  # a refit trains on the validation targets
            assert 0.0 <= row["valid_ndcg@10"] <= 1.0
    for name in ("sasrec-text+ease", "sasrec-id+ease"):
        blend = saved["models"][name]
        assert blend["ease_weight"] in bench.BLEND_WEIGHTS
        assert blend["valid_ndcg@10"] == max(blend["valid_ndcg@10_by_ease_weight"].values())
    # the planted "i -> i+1" chains are easy for item-kNN
    assert saved["models"]["itemknn"]["recall@10"] > saved["models"]["pop"]["recall@10"]
    assert saved["cold_start"]["removed_items"] == 6
    assert set(saved["cold_start"]["models"]) == base
    assert saved["latency"]["recommend_one_p99_ms"] > 0
    # the Gorse-style baselines: the picked point is the best fitted on validation, and its row
    # was fitted with exactly that point
    for name in ("mf-als", "mf-bpr"):
        search = saved["mf_search"][name]
        best = max(search["points"], key=lambda g: g["valid_ndcg@10"])
        assert all(search["picked"][k] == v for k, v in best.items() if k not in ("valid_ndcg@10", "seconds"))
        assert saved["models"][name]["config"] == search["picked"]
    md = out.with_suffix(".md").read_text()
    assert "| sasrec-text |" in md
    assert "mf-bpr (Gorse's matrix factorisation, `implicit` BPR): picked factors" in md
    assert "by a hill climb over" in md
    assert result["n_items"] == 30


def write_gsasrec(directory: Path, n_items: int = 30, n_users: int = 40, seed: int = 1) -> list[int]:
    """gSASRec-style ml-1m files; returns the validation users (rows with exact test history)."""
    rng = np.random.default_rng(seed)
    val_users = sorted(rng.choice(n_users, size=8, replace=False).tolist())
    train, val_in, val_out, test_out = [], [], [], []
    for u in range(n_users):
        start = int(rng.integers(1, n_items + 1))
        seq = [(start + t - 1) % n_items + 1 for t in range(int(rng.integers(6, 10)))]
        test_out.append(seq[-1])
        if u in val_users:  # train = all but 3, validation input = all but 2
            train.append(seq[:-3])
            val_in.append(seq[:-2])
            val_out.append(seq[-2])
        else:  # train = all but 2: the second-to-last item appears nowhere
            train.append(seq[:-2])
    (directory / "train_input.txt").write_text("".join(" ".join(map(str, s)) + "\n" for s in train))
    (directory / "val_input.txt").write_text("".join(" ".join(map(str, s)) + "\n" for s in val_in))
    (directory / "val_output.txt").write_text("".join(f"{t}\n" for t in val_out))
    (directory / "test_output.txt").write_text("".join(f"{t}\n" for t in test_out))
    return val_users


def test_sequential_benchmark_reports_exact_history_cases(tmp_path: Path) -> None:
    data = tmp_path / "ml-tiny"
    data.mkdir()
    val_users = write_gsasrec(data)
    out = tmp_path / "sequential_ml-tiny.json"
    bench = load_benchmark("sequential")
    bench.main(
        [
            "--format",
            "gsasrec",
            "--data-dir",
            str(data),
            "--models",
            "pop,itemknn,ease,sasrec-id,sasrec-id+ease",
            "--budget-minutes",
            "0.1",
            "--cold-start-frac",
            "0",
            "--sasrec-json",
            '{"hidden": 16, "n_blocks": 1, "n_heads": 1, "max_len": 8, "train": {"epochs": 2}}',
            "--out",
            str(out),
        ]
    )
    saved = json.loads(out.read_text())
    # the ids-only blend (no item text in this format) gets a row of its own, exact cases too
    assert saved["models"]["sasrec-id+ease"]["ease_weight"] in bench.BLEND_WEIGHTS
    for name in ("pop", "itemknn", "sasrec-id", "sasrec-id+ease"):
        exact = saved["models"][name]["exact_history"]
        assert exact["n_cases"] == len(val_users)
        low, high = exact["ndcg@10_ci95"]
        assert 0.0 <= low <= exact["ndcg@10"] <= high <= 1.0
    # with the complete history, the planted "i -> i+1" chain makes the next item the
    # obvious one for item-kNN; with a gap of one item it is a step further away
    assert saved["models"]["itemknn"]["exact_history"]["recall@10"] == 1.0
    assert "Exact-history test cases (8 users" in out.with_suffix(".md").read_text()
