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
            "--out",
            str(out),
        ]
    )
    summary = result["summary"]
    assert summary["n_visits_measured"] == 60 - 10 or summary["n_visits_measured"] > 0
    for arm in ("popularity", "featured"):
        assert 0 <= summary[arm]["clicks"]["mean"] <= 24
        low, high = summary[arm]["clicks"]["ci95"]
        assert low <= summary[arm]["clicks"]["mean"] <= high
    assert json.loads(out.read_text())["summary"]["clicks_difference"]["ci95"]
    assert "| featured |" in out.with_suffix(".md").read_text()
