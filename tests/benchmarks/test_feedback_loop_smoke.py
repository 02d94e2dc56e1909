"""Smoke test: benchmarks/feedback_loop.py runs end to end on tiny generated data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.benchmarks.loader import load_benchmark

ROOT = Path(__file__).resolve().parents[2]
WORDS = ["drill", "saw", "hammer", "paint", "deck", "screw", "lamp", "pipe", "valve", "tile"]


def write_homedepot(directory: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    titles = {100000 + i: f"{WORDS[i % 10]} {WORDS[(i * 3) % 10]} model {i}" for i in range(120)}
    (directory / "products.csv").write_text(
        "product_uid,product_title\n" + "".join(f"{u},{t}\n" for u, t in titles.items())
    )
    rows = ["id,product_uid,product_title,search_term,relevance"]
    n = 0
    for q in range(12):
        word = WORDS[q % 10] + ("" if q < 10 else " model")
        for u in rng.choice(list(titles), size=5, replace=False):
            n += 1
            rel = [1.0, 2.0, 2.67, 3.0][int(rng.integers(4))] if n % 5 else 3.0
            rows.append(f"{n},{u},{titles[u]},{word},{rel}")
        rows.append(f"{n + 1000},{100000 + q},{titles[100000 + q]},{word},1.0")
    (directory / "judgments.csv").write_text("\n".join(rows) + "\n")


def write_scientific(directory: Path, n_items: int = 40, n_users: int = 50, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    asins = [f"B{i:05d}" for i in range(n_items)]
    (directory / "Scientific.item2index").write_text("".join(f"{a}\t{i}\n" for i, a in enumerate(asins)))
    (directory / "Scientific.user2index").write_text("".join(f"U{u}\t{u}\n" for u in range(n_users)))
    (directory / "Scientific.text").write_text(
        "item_id:token\ttext:token_seq\n"
        + "".join(
            f"{a}\tThing {i}. Industrial & Scientific Tools. Brand{i % 4}. \n" for i, a in enumerate(asins)
        )
    )
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    train, valid, test = [header], [header], [header]
    for u in range(n_users):
        start = int(rng.integers(n_items - 8))
        seq = [start + j for j in range(int(rng.integers(4, 8)))]
        hist, v, t = seq[:-2], seq[-2], seq[-1]
        for j in range(1, len(hist)):
            train.append(f"{u}\t{' '.join(map(str, hist[:j]))}\t{hist[j]}\n")
        valid.append(f"{u}\t{' '.join(map(str, hist))}\t{v}\n")
        test.append(f"{u}\t{' '.join(map(str, [*hist, v]))}\t{t}\n")
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        (directory / f"Scientific.{name}.inter").write_text("".join(rows))


def test_feedback_loop_benchmark_runs(tmp_path, monkeypatch):
    # matplotlib is only a bench extra: CI has none, so take the SVG fallback here too.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    bench = load_benchmark("feedback_loop")
    write_homedepot(tmp_path / "data" / "homedepot")
    write_scientific(tmp_path / "data" / "amazon-scientific")
    out = tmp_path / "fl.json"
    result = bench.main(
        [
            "--data-dir", str(tmp_path / "data"),
            "--searches", "300",
            "--queries", "12",
            "--distractors", "20",
            "--retrain-every", "150",
            "--min-train-lists", "20",
            "--window", "100",
            "--browse-visits", "60",
            "--browse-users", "20",
            "--browse-retrain-every", "30",
            "--browse-ranker-every", "20",
            "--browse-seeds", "2",
            "--search-seeds", "2",
            "--jobs", "2",
            "--browse-burn-in", "20",
            "--browse-active", "5",
            "--browse-interest-size", "3",
            "--out", str(out),
            "--img-dir", str(tmp_path / "img"),
        ]
    )  # fmt: skip
    saved = json.loads(out.read_text())
    search = saved["search"]
    assert len(search["windows_heldout_ndcg10"]) == 3
    assert set(search["cumulative"]) == {"static", "naive", "ipw_only", "corrected", "oracle"}
    last = search["final_window"]
    assert last["oracle"] >= last["static"]  # the oracle sorts the same pool by the truth
    assert any(r["version"] for r in search["retrains"]["corrected"]), "the loops trained rankers"
    # Two search seeds in two processes: the first is the headline run, both are summarised.
    assert [r["seed"] for r in saved["search_seeds"]] == [0, 1]
    assert saved["search_seeds"][0]["gap_closed"] == search["gap_closed"]
    assert saved["search_seeds"][1]["windows_heldout_ndcg10"] and "corrected" in search["final_curves"]
    assert "Across seeds (each seed samples" in out.with_suffix(".md").read_text()
    split = search["exploration_split_last_window"]
    assert set(split) == {"corrected"} and 0.0 < split["corrected"]["explored_share"] < 0.5
    assert saved["browse"]["windows_clicks_per_view"]
    assert [r["seed"] for r in saved["browse_seeds"]] == [0, 1]
    browse = saved["browse"]
    assert browse["burn_in_visits"] == 20 and browse["before_learning_clicks_per_view"] is not None
    for trend in (browse["trend"]["learning"], browse["trend"]["frozen"], browse["lift_trend"]):
        assert trend["ci_low"] <= trend["change"] <= trend["ci_high"]
    assert "Across seeds" in out.with_suffix(".md").read_text()
    # the ranked arm: the learning feed plus a learned feed ranker, every 20 visits behind the gate
    assert all("ranked" in w for w in browse["windows_clicks_per_view"])
    assert [r["after_visits"] for r in browse["home_ranker_rounds"]] == [20, 40, 60]
    diff = browse["ranked_minus_learning_second_half"]
    assert diff["ci_low"] <= diff["mean"] <= diff["ci_high"]
    assert "learned feed ranker" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".md").read_text().startswith("# Feedback loop benchmark")
    assert result["plots"] and all(Path(p).exists() for p in result["plots"])
    svg = Path(result["plots"][0]).read_text()
    assert svg.startswith("<svg") and "<path " in svg
    home = Path(result["plots"][-1])
    assert home.name == "feedback_home_ctr.svg" and "+ feed ranker" in home.read_text()


def test_feedback_loop_search_part_is_reproducible(tmp_path):
    # A simulated clock stamps every event, so a seed gives the same run exactly, also when
    # seeds share the cores in separate processes.
    bench = load_benchmark("feedback_loop")
    write_homedepot(tmp_path / "data" / "homedepot")
    runs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"fl{jobs}.json"
        bench.main(
            [
                "--data-dir", str(tmp_path / "data"), "--parts", "search", "--no-plots",
                "--search-seeds", "2", "--jobs", jobs,
                "--searches", "200", "--queries", "12", "--distractors", "20",
                "--retrain-every", "100", "--min-train-lists", "20", "--window", "100",
                "--out", str(out),
            ]
        )  # fmt: skip
        runs.append(json.loads(out.read_text()))
    assert runs[0]["search_seeds"] == runs[1]["search_seeds"]
    assert runs[0]["search"]["windows_heldout_ndcg10"] == runs[1]["search"]["windows_heldout_ndcg10"]
    # and the two seeds are different runs
    assert runs[0]["search_seeds"][0]["final_window"] != runs[0]["search_seeds"][1]["final_window"]


def _result_file(path: Path, seeds: dict[int, tuple[float, float]], **args: str) -> Path:
    """A result file with the given seeds' (naive, corrected) gap shares; ipw_only = naive."""
    runs = [
        {
            "seed": seed,
            "gap_closed": {"naive": naive, "ipw_only": naive, "corrected": corrected},
            "worst_dip_vs_static_after_first_retrain": {
                "naive": 0.1,
                "ipw_only": 0.1,
                "corrected": 0.02 * seed,
            },
        }
        for seed, (naive, corrected) in seeds.items()
    ]
    path.write_text(
        json.dumps({"args": {"seed": str(min(seeds)), "window": "2500", **args}, "search_seeds": runs})
    )
    return path


def test_pooling_result_files_by_hand(tmp_path):
    bench = load_benchmark("feedback_loop")
    a = _result_file(tmp_path / "a.json", {0: (0.40, 0.50), 1: (0.44, 0.46)})
    b = _result_file(tmp_path / "b.json", {2: (0.42, 0.58)}, jobs="2")  # jobs may differ
    out = tmp_path / "pooled.json"
    result = bench.main(["--data-dir", str(tmp_path), "--pool", str(a), str(b), "--out", str(out)])
    corrected = result["pooled"]["corrected"]
    # 0.50, 0.46, 0.58: mean 0.5133..., sample std 0.0611, standard error 0.0611 / sqrt(3) = 0.0353
    assert corrected["gap_closed_mean"] == pytest.approx(0.51333, abs=1e-4)
    assert corrected["gap_closed_se"] == pytest.approx(0.035277, abs=1e-5)
    assert (corrected["gap_closed_min"], corrected["gap_closed_max"], corrected["worst_dip"]) == (
        0.46,
        0.58,
        0.0,
    )
    assert result["pooled"]["corrected_ahead_of_naive_in"] == 3
    assert result["pooled"]["corrected_smallest_margin_over_naive"] == pytest.approx(0.02)
    assert "| corrected | 3 | 51.3% | 3.5 |" in out.with_suffix(".md").read_text()

    again = _result_file(tmp_path / "c.json", {1: (0.4, 0.5)})
    with pytest.raises(SystemExit, match="seed 1 appears twice"):
        bench.main(["--data-dir", str(tmp_path), "--pool", str(a), str(again), "--out", str(out)])
    other = _result_file(tmp_path / "d.json", {5: (0.4, 0.5)}, window="1000")
    with pytest.raises(SystemExit, match=r"other settings.*window"):
        bench.main(["--data-dir", str(tmp_path), "--pool", str(a), str(other), "--out", str(out)])


def test_adding_the_ranked_arm_leaves_the_other_feeds_exactly_as_they_were(tmp_path):
    # Each arm reads its own simulated clock, so what one arm serves cannot depend on which
    # other arms run beside it (with one shared clock, a third arm shifted the others' times).
    bench = load_benchmark("feedback_loop")
    write_scientific(tmp_path / "data" / "amazon-scientific")
    runs = []
    for every in ("0", "20"):
        out = tmp_path / f"browse{every}.json"
        bench.main(
            [
                "--data-dir", str(tmp_path / "data"), "--parts", "browse", "--no-plots",
                "--browse-visits", "80", "--browse-users", "20", "--browse-retrain-every", "40",
                "--browse-ranker-every", every, "--browse-ranker-gate", "off", "--browse-seeds", "1",
                "--browse-ranker-min-lists", "5",
                "--browse-burn-in", "20", "--browse-active", "5", "--browse-interest-size", "3",
                "--browse-appeal-sigma", "0.5", "--out", str(out),
            ]
        )  # fmt: skip
        runs.append(json.loads(out.read_text())["browse"])
    without, with_ranked = runs
    for arm in ("learning", "frozen"):
        assert [w[arm] for w in without["windows_clicks_per_view"]] == [
            w[arm] for w in with_ranked["windows_clicks_per_view"]
        ]
    assert "ranked_minus_learning_second_half" not in without
    assert any(r["promoted"] for r in with_ranked["home_ranker_rounds"]), "gate off: candidates go live"
