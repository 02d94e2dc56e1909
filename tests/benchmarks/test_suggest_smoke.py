"""Smoke test: the autocomplete benchmark runs end to end on a tiny Home Depot-format folder."""

from __future__ import annotations

import csv
import json

from tests.benchmarks.loader import load_benchmark

TITLES = [
    "Cordless Drill Kit 18-Volt",
    "Cordless Drill Driver",
    "Cordless Impact Driver",
    "Garden Hose 50 ft",
    "Garden Hose Nozzle",
    "Shower Head Chrome",
    "Rain Shower Head",
    "Deck Screws 3 in.",
]
QUERIES = ["cordless drill", "garden hose", "rain shower head", "deck screws", "shower head", "hose nozzle"]


def write_tiny_homedepot(folder) -> None:
    folder.mkdir()
    with (folder / "products.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["product_uid", "product_title"])
        w.writerows([[str(100 + i), t] for i, t in enumerate(TITLES)])
    with (folder / "judgments.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "product_uid", "product_title", "search_term", "relevance"])
        w.writerows([[i, "100", TITLES[0], q, 2.0] for i, q in enumerate(QUERIES)])


def test_demand_is_seeded_and_zipf_shaped():
    bench = load_benchmark("suggest")
    a = bench.demand_stream(QUERIES, 3000, zipf=1.0, n_shoppers=40, seed=1)
    assert a == bench.demand_stream(QUERIES, 3000, zipf=1.0, n_shoppers=40, seed=1)
    counts = sorted((sum(q == x for q, _ in a) for x in QUERIES), reverse=True)
    assert counts[0] > 2 * counts[-1]  # heavy head, light tail


def test_baselines_by_hand():
    bench = load_benchmark("suggest")
    mpc = bench.MostPopularCompletion({"drill": 3, "drill bit": 5, "door": 9})
    assert mpc("dr", 8) == ["drill bit", "drill"] and mpc("d", 1) == ["door"] and mpc("x", 8) == []
    titles = bench.TitlePrefix(["drill bit set", "drill", "door knob"])
    assert titles("dr", 8) == ["drill", "drill bit set"]


def test_suggest_benchmark_smoke(tmp_path):
    bench = load_benchmark("suggest")
    data = tmp_path / "hd"
    write_tiny_homedepot(data)
    result = bench.main(
        ["--data-dir", str(data), "--searches", "600", "--eval-searches", "40", "--shoppers", "60",
         "--results-dir", str(tmp_path / "results")]
    )  # fmt: skip
    saved = json.loads((tmp_path / "results" / "suggest.json").read_text())
    assert saved == json.loads(json.dumps(result))
    systems = saved["systems"]
    assert set(systems) == {"mpc", "title-prefix", "shoploop-catalog", "shoploop", "shoploop-min-users-1"}
    for r in systems.values():
        assert 0.0 <= r["all"]["mrr@8"] <= 1.0 and 0.0 <= r["all"]["keystrokes_saved"] <= 1.0
        assert r["latency_ms"]["calls"] > 0
    # six queries and plenty of traffic: everything repeats, and with 60 shoppers each query
    # has well over three of them, so learning completes nearly every query early
    assert systems["mpc"]["all"]["mrr@8"] > 0.5
    assert systems["shoploop"]["all"]["mrr@8"] > 0.5
    assert systems["shoploop"]["all"]["mrr@8"] > systems["shoploop-catalog"]["all"]["mrr@8"]
    assert "| shoploop |" in (tmp_path / "results" / "suggest.md").read_text()
