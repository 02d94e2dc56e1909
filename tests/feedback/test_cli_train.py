"""`shoploop train` and `shoploop rollback` on a tiny SQLite shop home."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from typer.testing import CliRunner

from shoploop.cli.main import app
from shoploop.data.demo import DemoConfig, generate_demo_store
from shoploop.data.ingest import import_records
from shoploop.engine import build_engine
from shoploop.feedback.exploration import ExplorationConfig
from shoploop.store.home import open_stores
from tests.engine.conftest import FAST

runner = CliRunner()


def test_train_then_rollback(tmp_path: Path, traffic):
    home = tmp_path / "shop"
    bundle = generate_demo_store(DemoConfig(n_products=150, n_users=30, days=5, n_bots=0))
    engine = build_engine(replace(FAST, home=home, exploration=ExplorationConfig(budget=0.3)))
    import_records(bundle.products, bundle.events, engine.stores, source="demo", progress=False)
    engine.start()
    traffic(engine, 250, seed=5)
    engine.stores.close()

    waiting = runner.invoke(app, ["train", "--home", str(home), "--fast", "--min-train-lists", "100000"])
    assert waiting.exit_code == 0, waiting.output
    assert "skipped" in waiting.output and "(< 100000)" in waiting.output
    first = runner.invoke(app, ["train", "--home", str(home), "--fast"])
    assert first.exit_code == 0, first.output
    assert '"version": 1' in first.output
    # There is no earlier ranker to go back to: a clear error, not a traceback.
    none = runner.invoke(app, ["rollback", "recommender", "--home", str(home)])
    assert none.exit_code == 1 and "error" in none.output
    # A re-ranker's first version rolls back to none: the shop is served without it again.
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "model.txt").write_text("stand-in: rollback never loads it")
    with open_stores(home) as stores:
        only = stores.registry.register("browse_ranker", artifact)
        stores.registry.promote("browse_ranker", only.version)
    off = runner.invoke(app, ["rollback", "browse_ranker", "--home", str(home), "--reason", "too eager"])
    assert off.exit_code == 0 and f"browse_ranker: v{only.version} switched off" in off.output
    with open_stores(home) as stores:
        assert stores.registry.active("browse_ranker") is None
        assert stores.registry.decisions("browse_ranker")[-1].reason == "rolled back to none: too eager"
    missing = runner.invoke(app, ["train", "--home", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2


def test_train_one_model_as_candidate_or_active(tmp_path: Path):
    home = tmp_path / "shop"
    bundle = generate_demo_store(DemoConfig(n_products=120, n_users=25, days=5, n_bots=0))
    engine = build_engine(replace(FAST, home=home))
    import_records(bundle.products, bundle.events, engine.stores, source="demo", progress=False)
    engine.start()
    engine.stores.close()

    candidate = runner.invoke(app, ["train", "--home", str(home), "--fast", "--model", "recommender"])
    assert candidate.exit_code == 0, candidate.output
    assert "recommender: v2 registered, candidate" in candidate.output
    active = runner.invoke(
        app, ["train", "--home", str(home), "--fast", "--model", "recommender", "--promote"]
    )
    assert "recommender: v3 registered, active" in active.output
    # why each version went live, newest first, from the shell
    nowhere = runner.invoke(app, ["models", "log", "--home", str(tmp_path / "nowhere")])
    assert nowhere.exit_code == 2 and "no shop" in nowhere.output  # not an empty trail
    log = runner.invoke(
        app, ["models", "log", "recommender", "--home", str(home), "--json", "--action", "promote"]
    )
    assert log.exit_code == 0, log.output
    assert [(d["version"], d["action"]) for d in json.loads(log.output)] == [(3, "promote"), (1, "promote")]
    table = runner.invoke(app, ["models", "log", "--home", str(home), "--limit", "3"])
    assert table.exit_code == 0 and "recommender v3" in table.output and "retire" in table.output, (
        table.output
    )
    listed = runner.invoke(app, ["models", "list", "--home", str(home), "--json"])
    assert {(m["name"], m["version"], m["status"]) for m in json.loads(listed.output)} >= {
        ("recommender", 3, "active"),
        ("recommender", 2, "candidate"),
        ("recommender", 1, "retired"),
    }
    unknown = runner.invoke(app, ["models", "log", "--home", str(home), "--action", "deploy"])
    assert unknown.exit_code == 2 and "--action" in unknown.output
    bad = runner.invoke(app, ["train", "--home", str(home), "--model", "everything"])
    assert bad.exit_code == 2
    assert "--model" in bad.output
    misuse = runner.invoke(app, ["train", "--home", str(home), "--model", "recommender", "--gate"])
    assert misuse.exit_code == 2 and "--gate goes with" in misuse.output
    # BM25-only shop: nothing to fine-tune, or too few searches to judge it: an error, no traceback
    gated = runner.invoke(app, ["train", "--home", str(home), "--fast", "--model", "bi_encoder", "--gate"])
    assert gated.exit_code == 2 and "error: events: 17 recent clicked searches" in gated.output, gated.output
