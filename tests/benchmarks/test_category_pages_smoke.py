"""Smoke test: the category-page benchmark runs end to end on a tiny generated shop."""

from __future__ import annotations

import json

from tests.benchmarks.loader import load_benchmark


def test_category_pages_benchmark_smoke(tmp_path):
    bench = load_benchmark("category_pages")
    out = tmp_path / "category_pages.json"
    result = bench.main(
        [
            "--products",
            "200",
            "--history-users",
            "30",
            "--shoppers",
            "10",
            "--visits",
            "60",
            "--retrain-every",
            "20",
            "--out",
            str(out),
        ]
    )
    summary = result["summary"]
    assert summary["n_visits_measured"] == 60 - 10 or summary["n_visits_measured"] > 0
    for arm in ("popularity", "featured", "learned"):
        assert 0 <= summary[arm]["clicks"]["mean"] <= 24
        low, high = summary[arm]["clicks"]["ci95"]
        assert low <= summary[arm]["clicks"]["mean"] <= high
    saved = json.loads(out.read_text())["summary"]
    assert saved["featured_vs_popularity"]["ci95"] and saved["learned_vs_featured_second_half"]["ci95"]
    rounds = saved["retrain_rounds"]
    assert [r["after_visits"] for r in rounds] == [20, 40, 60]
    assert all(r["reason"] and r["lists"] >= 20 for r in rounds), "every round saw the pages served so far"
    if not any(r["promoted"] for r in rounds):  # too few lists to learn from: the arms serve alike
        assert summary["learned"]["clicks"] == summary["featured"]["clicks"], "common random numbers"
    table = out.with_suffix(".md").read_text()
    assert "| featured |" in table and "| learned |" in table and "3 retraining rounds" in table
