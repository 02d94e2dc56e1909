"""Smoke test: benchmarks/click_finetune.py end to end on tiny generated data and a tiny encoder."""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchmarks.loader import load_benchmark
from tests.benchmarks.test_feedback_loop_smoke import write_homedepot
from tests.text.test_finetune import tiny_sentence_transformer


def run_tiny(tmp_path, name: str, *extra: str) -> Path:
    """The benchmark on tiny generated data and a tiny encoder; returns its JSON path."""
    bench = load_benchmark("click_finetune")
    write_homedepot(tmp_path / "data" / "homedepot")
    out = tmp_path / name
    encoder = tiny_sentence_transformer(tmp_path / "st")
    bench.main(
        [
            "--data-dir", str(tmp_path / "data"), "--out", str(out), "--queries", "12",
            "--distractors", "20", "--searches", "400", "--minutes", "0.2", "--min-pairs", "10",
            "--cache-dir", str(tmp_path / "cache"), "--encoder-path", encoder, *extra,
        ]
    )  # fmt: skip
    return out


def test_click_finetune_trains_a_candidate_and_compares_it_with_the_baseline(tmp_path):
    out = run_tiny(tmp_path, "click.json")
    saved = json.loads(out.read_text())
    assert saved["clicks"] > 0 and saved["candidate_metrics"]["train_pairs"] > 0
    for part in ("held_out", "training"):
        row = saved["results"][part]
        base, tuned = row["baseline_packaged_minilm"], row["fine_tuned_on_clicks"]
        assert 0.0 <= base["ndcg10_served"] <= 1.0 and 0.0 <= tuned["ndcg10_dense"] <= 1.0
        assert row["served_gain"] == tuned["ndcg10_served"] - base["ndcg10_served"]
        lo, hi = row["served_gain_ci95"]
        assert lo <= hi
    assert (
        saved["results"]["held_out"]["baseline_packaged_minilm"]["n_queries"] == saved["n_held_out_queries"]
    )
    md = out.with_suffix(".md").read_text()
    assert (
        md.startswith("# Fine-tuning search's encoder on clicks")
        and "| held_out | fine_tuned_on_clicks |" in md
    )


def test_click_finetune_with_the_gate_records_both_replay_modes_decisions(tmp_path):
    out = run_tiny(tmp_path, "gated.json", "--gate", "--gate-min-lists", "5")
    gate = json.loads(out.read_text())["gate"]
    assert set(gate) == {"shown", "shown+true_curve", "catalog", "catalog+true_curve"}
    for key, decision in gate.items():
        metrics = decision["metrics"]
        assert metrics["held_out_searches"] >= 5 and metrics["replay"] == key.split("+")[0]
        assert metrics["position_weighted"] == key.endswith("+true_curve")
        assert "replay NDCG@10" in decision["reason"]
    md = out.with_suffix(".md").read_text()
    assert "- replay gate `shown`" in md and "- replay gate `catalog+true_curve`" in md
