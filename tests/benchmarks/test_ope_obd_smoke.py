"""Smoke test for benchmarks/ope_obd.py on a tiny generated log in the Open Bandit Dataset layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.benchmarks.loader import load_benchmark

ROOT = Path(__file__).resolve().parents[2]


def _write_tiny_obd(root: Path, n_items: int = 5, n_rows: int = 300, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    ctr = rng.uniform(0.02, 0.2, n_items)
    items = pd.DataFrame(
        {
            "item_id": np.arange(n_items),
            "item_feature_0": rng.normal(size=n_items),
            "item_feature_1": [f"c{i % 2}" for i in range(n_items)],
            "item_feature_2": [f"d{i % 3}" for i in range(n_items)],
            "item_feature_3": ["e"] * n_items,
        }
    )
    for policy in ("random", "bts"):
        action = rng.integers(0, n_items, n_rows)
        position = rng.integers(1, 4, n_rows)
        df = pd.DataFrame(
            {
                "timestamp": pd.date_range("2019-11-24", periods=n_rows, freq="min", tz="UTC").astype(str),
                "item_id": action,
                "position": position,
                "click": (rng.random(n_rows) < ctr[action]).astype(int),
                "propensity_score": 1.0 / n_items,
                "user_feature_0": rng.choice(["a", "b"], n_rows),
                "user_feature_1": rng.choice(["x", "y", "z"], n_rows),
                "user-item_affinity_0": rng.random(n_rows),
            }
        )
        folder = root / policy / "men"
        folder.mkdir(parents=True)
        df.to_csv(folder / "men.csv")
        items.to_csv(folder / "item_context.csv")


def test_ope_obd_smoke_without_obp(tmp_path: Path) -> None:
    bench = load_benchmark("ope_obd")
    _write_tiny_obd(tmp_path / "obd")
    out_path = tmp_path / "res" / "ope.json"
    out = bench.main(
        [
            "--data-dir",
            str(tmp_path / "obd"),
            "--out",
            str(out_path),
            "--n-boot",
            "3",
            "--n-sim",
            "2000",
            "--no-obp",
        ]
    )
    saved = json.loads(out_path.read_text())
    assert saved["n_boot"] == 3 and not saved["obp_ran"]
    assert "not from this run" in saved["obp_reference"].lower()
    for name in ("ips", "snips", "position_snips", "dm[pbm]", "dr[pbm]", "switch_dr[cell]", "dr_os[pbm]"):
        assert np.isfinite(saved["estimators"][name]["rel_error_mean"]), name
    assert out["best_ours"]["estimator"] in saved["estimators"]
    assert out_path.with_suffix(".md").read_text().startswith("# OPE on Open Bandit Dataset")


@pytest.mark.slow  # importing obp (torch, matplotlib) and its Monte Carlo take ~15 s
def test_ope_obd_smoke_with_obp(tmp_path: Path) -> None:
    pytest.importorskip("obp", reason="obp (bench extra) not installed")
    bench = load_benchmark("ope_obd")
    _write_tiny_obd(tmp_path / "obd", n_items=34, n_rows=900)  # the "men" production prior has 34 items
    out_path = tmp_path / "ope.json"
    out = bench.main(
        ["--data-dir", str(tmp_path / "obd"), "--out", str(out_path), "--n-boot", "2", "--n-sim", "2000"]
    )
    assert out["obp_ran"]
    assert "obp:snipw" in out["estimators"] and "ratio_best_ours_to_best_obp" in out
    # obp also runs with our side information (the BTS prior as an action-context column), and the
    # like-for-like ratio is taken against its best over every obp run
    assert "obp+hist:dm" in out["estimators"] and "obp+hist-only:dm" in out["estimators"]
    assert not any(k.startswith("obp") for k in out["paired_share_of_resamples_closer_than_best_obp"])
    best_any = min(s["rel_error_mean"] for k, s in out["estimators"].items() if k.startswith("obp"))
    assert out["best_obp_with_side_information"]["rel_error_mean"] == best_any
    assert out["ratio_best_ours_to_best_obp_same_information"] == pytest.approx(
        out["best_ours"]["rel_error_mean"] / best_any
    )
    # the same resamples feed both sides: our SNIPS equals obp's SNIPW on every resample
    np.testing.assert_allclose(
        out["per_resample_estimates"]["snips"], out["per_resample_estimates"]["obp:snipw"]
    )
