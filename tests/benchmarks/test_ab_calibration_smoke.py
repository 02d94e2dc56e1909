"""Smoke test: the A/B calibration benchmark runs end to end on a tiny configuration."""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchmarks.loader import load_benchmark


def test_ab_calibration_smoke(tmp_path: Path):
    out = tmp_path / "ab.json"
    res = load_benchmark("ab_calibration").main(
        ["--n-sims", "60", "--days", "7", "--users-per-day", "4000", "--cuped-sims", "30",
         "--cuped-users-per-day", "200", "--lifts", "0.05,0.5", "--out", str(out)]
    )  # fmt: skip
    saved = json.loads(out.read_text())
    assert saved["aa"]["msprt"]["n_sims"] == 60
    assert {r["relative_lift"] for r in saved["ab"]} == {0.05, 0.5}
    assert out.with_suffix(".md").read_text().startswith("# A/B calibration")
    # a 50% lift on 14,000 users per arm is detected by every rule
    big = next(r for r in res["ab"] if r["relative_lift"] == 0.5)
    assert big["msprt"]["rate"] == 1.0 and big["msprt"]["median_detection_day"] <= 7
