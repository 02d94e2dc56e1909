"""The serving benchmark end to end on a tiny generated shop (real subprocess servers, 1 s phases)."""

from __future__ import annotations

import json

import pytest

from benchmarks.serving import main
from shoploop.store.home import open_stores


@pytest.mark.slow
def test_serving_benchmark_smoke(tmp_path):
    out = tmp_path / "serving.json"
    result = main(
        [
            "--generate",
            "--products", "150",
            "--home", str(tmp_path / "home"),
            "--out", str(out),
            "--duration", "1",
            "--concurrency", "2",
            "--search-sweep", "1,2",
            "--batch", "20",
            "--no-dense",
            "--recommender", "item_knn",
            "--startup-timeout", "300",
            "--browse-ranker", "stand-in",
        ]
    )  # fmt: skip
    assert set(result["phases"]) == {
        "bare_fastapi",
        "search",
        "search_1_clients",
        "suggest",
        "home",
        "browse",
        "intake",
    }
    assert result["phases"]["search_1_clients"]["clients"] == 1
    assert result["search_slo"]["judged"] in {"search", "search_1_clients"}
    for name, phase in result["phases"].items():
        assert phase["requests"] > 0, name
        assert phase["errors"] == 0, name
        assert phase["p99_ms"] >= phase["p50_ms"] > 0
    assert result["phases"]["intake"]["units_per_s"] > 0
    assert result["server_memory_mib"]["peak"] > 0
    assert json.loads(out.read_text())["targets"]
    assert "| search |" in out.with_suffix(".md").read_text()
    # category pages were served re-ordered by the learned stand-in, without an error
    assert result["config"]["browse_ranker"] == "stand-in"
    with open_stores(tmp_path / "home") as stores:
        active = stores.registry.active("browse_ranker")
        assert active is not None and active.metrics["stand_in"] is True
