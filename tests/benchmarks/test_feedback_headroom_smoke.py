"""Smoke test: benchmarks/feedback_headroom.py runs end to end on tiny generated data."""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchmarks.loader import load_benchmark
from tests.benchmarks.test_feedback_loop_smoke import write_homedepot

ROOT = Path(__file__).resolve().parents[2]


def test_feedback_headroom_runs_and_its_ceilings_are_ordered(tmp_path):
    bench = load_benchmark("feedback_headroom")
    write_homedepot(tmp_path / "data" / "homedepot")
    out = tmp_path / "headroom.json"
    bench.main(
        [
            "--data-dir", str(tmp_path / "data"), "--out", str(out), "--no-dense",
            "--seeds", "2", "--queries", "12", "--distractors", "20",
        ]
    )  # fmt: skip
    saved = json.loads(out.read_text())
    assert [r["seed"] for r in saved["seeds"]] == [0, 1]
    for run in saved["seeds"]:
        nd = run["ndcg10"]
        # Sorting a deeper head by the truth can only help; the oracle sorts the whole pool.
        chain = [nd["static"], nd["reorder@6"], nd["reorder@10"], nd["reorder@20"], nd["reorder@30"]]
        assert chain == sorted(chain) and chain[-1] <= nd["oracle"] + 1e-9
        assert 0.0 <= nd["content_ceiling"] <= 1.0
        assert run["gap_share"]["static"] == 0.0
    md = out.with_suffix(".md").read_text()
    assert md.startswith("# Feedback loop headroom") and "| reorder@10 |" in md
