from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from shoploop.evaluation.ab import (
    Experiment,
    ExperimentStore,
    Exposure,
    MemoryExperimentStore,
    MetricSpec,
    SqliteExperimentStore,
    Variant,
)


def make_experiment(exp_id: str = "rec-v2", t0=None) -> Experiment:
    kwargs = {"created_at": t0} if t0 is not None else {}
    return Experiment(
        id=exp_id,
        variants=(
            Variant("control", 0.5, model_version="recommender:3"),
            Variant("treatment", 0.5, policy="ease"),
        ),
        primary_metric=MetricSpec("conversion", kind="proportion"),
        guardrails=(MetricSpec("revenue", kind="mean", max_relative_harm=0.02),),
        surface="home",
        **kwargs,
    )


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path: Path) -> Iterator[ExperimentStore]:
    if request.param == "memory":
        yield MemoryExperimentStore()
    else:
        s = SqliteExperimentStore(tmp_path / "shoploop.sqlite")
        yield s
        s.close()


def test_config_validation():
    with pytest.raises(ValueError):
        Experiment(id="x", variants=(Variant("a", 0.5), Variant("b", 0.4)), primary_metric=MetricSpec("m"))
    with pytest.raises(ValueError):
        Experiment(id="x", variants=(Variant("a", 1.0),), primary_metric=MetricSpec("m"))
    with pytest.raises(ValueError):
        Experiment(id="x", variants=(Variant("a", 0.5), Variant("a", 0.5)), primary_metric=MetricSpec("m"))


def test_roundtrip_dict(t0):
    exp = make_experiment(t0=t0)
    assert Experiment.from_dict(exp.to_dict()) == exp


def test_lifecycle_and_exposures(store: ExperimentStore, t0):
    exp = store.save(make_experiment(t0=t0))
    assert isinstance(store, ExperimentStore)
    assert exp.expose("u1", t0) is None  # drafts expose nobody
    running = store.start(exp.id, t0)
    assert running.status == "running" and running.start == t0
    assert store.get(exp.id) == running
    with pytest.raises(ValueError):
        store.start(exp.id, t0)
    first = running.expose("u1", t0 + timedelta(hours=2), request_id="r1")
    assert first is not None and first.variant == running.assign("u1")
    later = Exposure(exp.id, "u1", first.variant, t0 + timedelta(hours=5))
    earlier = Exposure(exp.id, "u1", first.variant, t0 + timedelta(hours=1))
    assert store.record_exposures([first]) == 1
    assert store.record_exposures([later]) == 0
    assert store.record_exposures([earlier]) == 0
    stored = store.exposures(exp.id)
    assert len(stored) == 1 and stored[0].at == t0 + timedelta(hours=1)  # first exposure kept
    others = [running.expose(f"u{i}", t0) for i in range(2, 200)]
    assert store.record_exposures([e for e in others if e is not None]) == 198
    counts = store.exposure_counts(exp.id)
    assert sum(counts.values()) == 199 and set(counts) == {"control", "treatment"}
    stopped = store.stop(exp.id, t0 + timedelta(days=14))
    assert stopped.status == "stopped"
    assert [e.id for e in store.list(status="stopped")] == [exp.id]
    assert store.list(status="running") == []


def test_one_shoppers_exposures_are_listed_and_erased(store: ExperimentStore, t0):
    home = store.start(store.save(make_experiment("home-v2", t0=t0)).id, t0)
    search = store.start(store.save(make_experiment("search-v2", t0=t0 + timedelta(minutes=1))).id, t0)
    store.record_exposures(
        [
            Exposure(search.id, "u1", "control", t0 + timedelta(hours=1), "search", "r2"),
            Exposure(home.id, "u1", "treatment", t0 + timedelta(minutes=30), "home", "r1"),
            Exposure(home.id, "u2", "control", t0),
        ]
    )
    mine = store.user_exposures("u1")
    assert [(e.experiment_id, e.variant, e.request_id) for e in mine] == [
        ("home-v2", "treatment", "r1"),
        ("search-v2", "control", "r2"),
    ]  # time order, across experiments
    assert store.user_exposures("nobody") == []
    assert store.delete_user("u1") == 2
    assert store.user_exposures("u1") == []
    assert [e.user_id for e in store.exposures(home.id)] == ["u2"]  # other shoppers untouched
    assert store.exposure_counts(search.id) == {}
    assert store.delete_user("u1") == 0


def test_exposures_before_a_cutoff_are_counted_and_erased(store: ExperimentStore, t0):
    exp = store.start(store.save(make_experiment(t0=t0)).id, t0)
    store.record_exposures(
        [
            Exposure(exp.id, "old", "control", t0 - timedelta(hours=2)),
            Exposure(exp.id, "edge", "control", t0),  # exactly at the cutoff: kept
            Exposure(exp.id, "new", "treatment", t0 + timedelta(hours=1)),
        ]
    )
    assert store.count_exposures_before(t0) == 1
    assert store.delete_exposures_before(t0) == 1
    assert [e.user_id for e in store.exposures(exp.id)] == ["edge", "new"]
    assert store.delete_exposures_before(t0) == 0


def test_sqlite_persists_and_is_atomic(tmp_path: Path, t0):
    path = tmp_path / "shoploop.sqlite"
    s = SqliteExperimentStore(path)
    exp = s.save(make_experiment(t0=t0))
    s.start(exp.id, t0)
    s.record_exposures([Exposure(exp.id, "a", "control", t0)])
    bad = [Exposure(exp.id, "b", "control", t0), Exposure(exp.id, "c", "control", t0.replace(tzinfo=None))]
    with pytest.raises(ValueError):
        s.record_exposures(bad)
    s.close()
    s2 = SqliteExperimentStore(path)
    assert s2.get(exp.id).status == "running"
    assert [e.user_id for e in s2.exposures(exp.id)] == ["a"]  # the failed batch wrote nothing
    s2.close()
