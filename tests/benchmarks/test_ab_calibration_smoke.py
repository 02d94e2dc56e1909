"""Smoke test: the A/B calibration benchmark runs end to end on a tiny configuration."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "ab_calibration.py"


def _load():
    spec = importlib.util.spec_from_file_location("ab_calibration_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


def test_ab_calibration_smoke(tmp_path: Path):
    out = tmp_path / "ab.json"
    res = _load().main(
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
