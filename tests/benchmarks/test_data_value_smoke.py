"""Smoke test: the data-value benchmark runs end to end on a tiny synthetic shop."""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchmarks.loader import load_benchmark


def test_data_value_smoke(tmp_path: Path, monkeypatch):
    mod = load_benchmark("data_value")
    real = mod.synthetic_task
    monkeypatch.setattr(mod, "synthetic_task", lambda seed: real(seed, n_users=150, n_valid=60, n_test=60))
    out = tmp_path / "dv.json"
    res = mod.main(["--out", str(out), "--max-permutations", "40", "--time-budget", "20"])
    saved = json.loads(out.read_text())
    assert {s["name"] for s in saved["slices"]} >= {"web", "reviews", "affiliate-clicks", "partner-reviews"}
    assert set(res["exact_shapley"]) == {s["name"] for s in saved["slices"]}
    assert saved["knn_shapley"]["n_train_events"] > 0
    assert out.with_suffix(".md").read_text().startswith("# Data value")
