"""ArtifactStore (model registry) contract, run on every implementation."""

from __future__ import annotations

import pytest

from shoploop.store.protocols import ArtifactStore


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "model-files"
    (d / "sub").mkdir(parents=True)
    (d / "config.json").write_text('{"dim": 8}')
    (d / "sub" / "weights.npz").write_bytes(b"\x00\x01\x02")
    return d


def test_is_an_artifact_store(registry):
    assert isinstance(registry, ArtifactStore)


def test_register_copies_files_and_numbers_versions(registry, model_dir, tmp_path):
    v1 = registry.register("ranker", model_dir, metrics={"ndcg": 0.3}, config={"lr": 0.1})
    assert (v1.name, v1.version, v1.status) == ("ranker", 1, "candidate")
    assert dict(v1.metrics) == {"ndcg": 0.3} and dict(v1.config) == {"lr": 0.1}
    assert v1.path == tmp_path / "artifacts" / "ranker" / "1"
    assert (v1.path / "config.json").read_text() == '{"dim": 8}'
    assert (v1.path / "sub" / "weights.npz").read_bytes() == b"\x00\x01\x02"
    # the copy is independent of the source directory
    (model_dir / "config.json").write_text("changed")
    assert (v1.path / "config.json").read_text() == '{"dim": 8}'
    v2 = registry.register("ranker", model_dir)
    assert v2.version == 2 and v2.created_at > v1.created_at
    assert registry.register("encoder", model_dir).version == 1
    assert registry.get("ranker", 1) == v1
    assert [(v.name, v.version) for v in registry.versions()] == [
        ("ranker", 1),
        ("ranker", 2),
        ("encoder", 1),
    ]
    assert [v.version for v in registry.versions("ranker")] == [1, 2]
    # no staging leftovers next to the published versions
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == ["encoder", "ranker"]


def test_register_refuses_bad_names_and_missing_dirs(registry, model_dir, tmp_path):
    with pytest.raises(ValueError):
        registry.register("../escape", model_dir)
    with pytest.raises(NotADirectoryError):
        registry.register("ok", tmp_path / "nope")
    assert registry.versions() == []


def test_get_unknown_raises_key_error(registry):
    with pytest.raises(KeyError):
        registry.get("ranker", 1)


def test_promote_retires_previous_active(registry, model_dir):
    registry.register("m", model_dir)
    registry.register("m", model_dir)
    assert registry.active("m") is None
    assert registry.promote("m", 1, reason="first").status == "active"
    assert registry.promote("m", 2, reason="better ndcg").status == "active"
    assert registry.active("m").version == 2
    assert registry.get("m", 1).status == "retired"
    assert [v.status for v in registry.versions("m")] == ["retired", "active"]
    assert registry.active("other") is None


def test_exactly_one_active_per_name(registry, model_dir):
    for _ in range(4):
        registry.register("m", model_dir)
    for v in (1, 3, 2, 4, 2):
        registry.promote("m", v)
        assert [x.version for x in registry.versions("m") if x.status == "active"] == [v]


def test_reject_and_promote_rejected_refused(registry, model_dir):
    registry.register("m", model_dir, metrics={"ndcg": 0.2})
    rejected = registry.reject("m", 1, reason="worse than active", metrics={"delta": -0.05})
    assert rejected.status == "rejected"
    assert dict(rejected.metrics) == {"ndcg": 0.2, "delta": -0.05}
    with pytest.raises(ValueError):
        registry.promote("m", 1)


def test_rollback_restores_previous_version(registry, model_dir):
    for _ in range(3):
        registry.register("m", model_dir)
    with pytest.raises(LookupError):
        registry.rollback("m")
    registry.promote("m", 1)
    registry.promote("m", 2)
    registry.promote("m", 3)
    restored = registry.rollback("m", reason="conversion dropped")
    assert restored.version == 2 and restored.status == "active"
    assert registry.get("m", 3).status == "rejected"
    assert registry.rollback("m").version == 1  # walks further back, never ping-pongs
    with pytest.raises(LookupError):
        registry.rollback("m")
    assert registry.active("m").version == 1


def test_rollback_of_a_first_version_to_none_only_when_asked(registry, model_dir):
    registry.register("m", model_dir)
    with pytest.raises(LookupError):
        registry.rollback("m", to_none=True)  # nothing active, nothing retired
    registry.promote("m", 1)
    with pytest.raises(LookupError):
        registry.rollback("m")  # a model that must always have a version stays as it is
    assert registry.active("m").version == 1
    off = registry.rollback("m", reason="clicks fell", to_none=True)
    assert (off.version, off.status) == (1, "rejected") and registry.active("m") is None
    last = registry.decisions("m")[-1]
    assert (last.action, last.reason) == ("reject", "rolled back to none: clicks fell")
    registry.register("m", model_dir)
    registry.promote("m", 2)
    registry.register("m", model_dir)
    registry.promote("m", 3)
    assert registry.rollback("m", to_none=True).version == 2, "a retired version comes back first"
    assert registry.active("m").version == 2


def test_update_metrics_merges(registry, model_dir):
    registry.register("m", model_dir, metrics={"a": 1})
    updated = registry.update_metrics("m", 1, {"b": 2.5, "a": 3})
    assert dict(updated.metrics) == {"a": 3, "b": 2.5}
    assert dict(registry.get("m", 1).metrics) == {"a": 3, "b": 2.5}


def test_decisions_audit_trail(registry, model_dir):
    registry.register("m", model_dir, metrics={"ndcg": 0.1})
    registry.register("m", model_dir)
    registry.register("other", model_dir)
    registry.promote("m", 1, reason="bootstrap")
    registry.promote("m", 2, reason="gate passed")
    registry.rollback("m", reason="alarm")
    trail = [(d.version, d.action, d.reason) for d in registry.decisions("m")]
    assert trail == [
        (1, "register", ""),
        (2, "register", ""),
        (1, "promote", "bootstrap"),
        (1, "retire", "replaced by v2"),
        (2, "promote", "gate passed"),
        (2, "reject", "rolled back: alarm"),
        (1, "rollback", "alarm"),
    ]
    assert dict(registry.decisions("m")[2].metrics) == {"ndcg": 0.1}
    ats = [d.at for d in registry.decisions()]
    assert ats == sorted(ats)
    assert len(registry.decisions()) == 8


def test_recent_decisions_newest_first_filtered_and_limited(registry, model_dir):
    from shoploop.store.audit import BadTrailQuery, recent_decisions

    registry.register("m", model_dir)
    registry.register("m", model_dir)
    registry.register("other", model_dir)
    registry.promote("m", 1, reason="bootstrap")
    registry.reject("m", 2, reason="gate: NDCG@10 0.30 < active 0.40 - 0.005", metrics={"gate": {"n": 40}})
    registry.promote("other", 1, reason="by hand")
    newest = recent_decisions(registry)
    assert [(d.name, d.action) for d in newest[:2]] == [("other", "promote"), ("m", "reject")]
    assert len(newest) == 6
    only_m = recent_decisions(registry, "m", actions=["promote", "reject"])
    assert [(d.version, d.action, d.reason) for d in only_m] == [
        (2, "reject", "gate: NDCG@10 0.30 < active 0.40 - 0.005"),
        (1, "promote", "bootstrap"),
    ]
    assert dict(only_m[0].metrics) == {"gate": {"n": 40}}  # the evidence travels with the decision
    assert [d.action for d in recent_decisions(registry, "m", limit=1)] == ["reject"]
    assert recent_decisions(registry, "nobody") == []
    with pytest.raises(BadTrailQuery) as bad:
        recent_decisions(registry, actions=["deploy"])
    assert bad.value.field == "actions" and "deploy" in str(bad.value)
    with pytest.raises(BadTrailQuery) as bad:
        recent_decisions(registry, limit=0)
    assert bad.value.field == "limit"


def test_decisions_query_is_answered_by_the_store(registry, model_dir):
    registry.register("m", model_dir)
    registry.register("m", model_dir)
    registry.promote("m", 1, reason="first")
    registry.promote("m", 2, reason="second")
    everything = registry.decisions("m")
    assert registry.decisions("m", limit=2) == everything[:2]  # oldest first by default
    assert registry.decisions("m", newest_first=True) == everything[::-1]
    assert [d.reason for d in registry.decisions("m", actions=["promote"], newest_first=True)] == [
        "second",
        "first",
    ]
    assert registry.decisions("m", actions=[]) == []
