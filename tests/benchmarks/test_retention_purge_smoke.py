"""Smoke test: the retention-purge benchmark runs end to end on a tiny log and its numbers add up."""

from __future__ import annotations

import json

from tests.benchmarks.loader import load_benchmark


def test_retention_purge_benchmark_smoke(tmp_path):
    bench = load_benchmark("retention_purge")
    out = tmp_path / "out.json"
    result = bench.main(
        ["--events", "3000", "--purge-frac", "0.4", "--idle-seconds", "0.3", "--writer-every-ms", "10",
         "--out", str(out), "--results-dir", str(tmp_path / "results"), "--workdir", str(tmp_path / "work")]
    )  # fmt: skip
    saved = json.loads(out.read_text())
    assert saved == result
    arms = {a["arm"]: a for a in saved["arms"]}
    assert list(arms) == ["idle", "chunked", "single_delete"]
    assert arms["idle"]["rows_erased"] == 0
    assert arms["chunked"]["rows_erased"] == arms["single_delete"]["rows_erased"] == 1200
    assert all(a["rows_left_ok"] for a in arms.values())  # exactly the old rows went, writes kept
    assert all(a["writer_appends_total"] > 0 for a in arms.values())
    md = (tmp_path / "results" / "retention_purge.md").read_text()
    assert "single DELETE (baseline)" in md and "chunked purge (product" in md
    assert not any((tmp_path / "work").iterdir())  # databases cleaned up
