"""Smoke test: the ingest benchmark runs end to end on a tiny input and reports sane numbers."""

from __future__ import annotations

import json

from tests.benchmarks.loader import load_benchmark


def test_generator_is_seeded_and_valid():
    bench = load_benchmark("ingest")
    a = bench.generate_events(300, seed=3)
    b = bench.generate_events(300, seed=3)
    assert a == b and len(a) == 300
    assert len({e.event_id for e in a}) == 300
    assert {e.type for e in a} == {"impression", "view", "click", "add_to_cart", "purchase"}


def test_ingest_benchmark_smoke(tmp_path, monkeypatch):
    bench = load_benchmark("ingest")
    monkeypatch.setattr(bench, "NAIVE_DEFAULT_CAP", 20)  # fsync per event is slow; keep it tiny
    out = tmp_path / "out.json"
    result = bench.main(
        ["--events", "2000", "--batch-size", "500", "--compare-batch-size", "125", "--out", str(out),
         "--results-dir", str(tmp_path / "results"), "--workdir", str(tmp_path / "work")]
    )  # fmt: skip
    saved = json.loads(out.read_text())
    assert saved["n_events"] == 2000
    methods = saved["methods"]
    assert methods["batch_wal_normal"]["stored"] == 2000
    assert methods["batch_wal_normal"]["inserted"] == 2000
    assert methods["batch_wal_normal_other_size"]["stored"] == 2000
    assert "125 events per batch" in methods["batch_wal_normal_other_size"]["label"]
    assert methods["reimport"]["rows_added"] == 0
    assert methods["reimport"]["duplicates"] == 2000
    assert methods["naive_row_commit_wal"]["stored"] == 2000
    assert methods["naive_row_commit_default"]["events"] == 20
    assert all(row["events_per_s"] > 0 for row in methods.values())
    assert result["reimport_added_rows"] == 0
    md = (tmp_path / "results" / "ingest.md").read_text()
    assert "batch append" in md and "naive baseline" in md
    assert json.loads((tmp_path / "results" / "ingest.json").read_text()) == saved
    assert not any((tmp_path / "work").iterdir())  # databases cleaned up
