"""The benchmarks' shared result writer: JSON with numpy values, Markdown beside it, atomic files."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tests.benchmarks.loader import load_benchmark

results_io = load_benchmark("results_io")


def test_json_round_trips_numpy_values(tmp_path: Path):
    result = {
        "n": np.int64(3),
        "share": np.float32(0.5),
        "ndcg": np.float64(0.125),
        "passed": np.bool_(True),
        "matrix": np.arange(4, dtype=np.int32).reshape(2, 2),
        "curve": np.array([0.25, 0.75]),
        "nested": {"rows": [np.int16(1), {"x": np.float16(1.5)}]},
        "path": Path("benchmarks/results/x.json"),
        "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "tags": {"b", "a"},
        "plain": [1, 2.5, "s", None, True],
    }
    out = tmp_path / "res.json"
    results_io.write_results(out, result, "# res\n")

    text = out.read_text()
    assert text.endswith("}\n")
    loaded = json.loads(text)
    assert loaded == {
        "n": 3,
        "share": 0.5,
        "ndcg": 0.125,
        "passed": True,
        "matrix": [[0, 1], [2, 3]],
        "curve": [0.25, 0.75],
        "nested": {"rows": [1, {"x": 1.5}]},
        "path": "benchmarks/results/x.json",
        "when": "2026-01-02T03:04:05+00:00",
        "tags": ["a", "b"],
        "plain": [1, 2.5, "s", None, True],
    }
    # numpy integers and booleans stay integers and booleans (not 3.0 / 1.0)
    assert type(loaded["n"]) is int and type(loaded["passed"]) is bool
    assert type(loaded["matrix"][0][0]) is int
    # plain values are written exactly as `json.dumps(indent=2)` writes them
    plain = {"a": 1, "b": [0.1, "x"], "c": {"d": None}}
    results_io.write_results(out, plain, "")
    assert out.read_text() == json.dumps(plain, indent=2) + "\n"


def test_markdown_lands_next_to_the_json_or_at_md_path(tmp_path: Path):
    out = tmp_path / "res.json"
    results_io.write_results(out, {"a": 1}, "| a |\n|---|\n| 1 |\n")
    assert (tmp_path / "res.md").read_text() == "| a |\n|---|\n| 1 |\n"

    elsewhere = tmp_path / "docs" / "tables" / "summary.md"
    results_io.write_results(tmp_path / "other.json", {"b": 2}, "# b — two\n", md_path=elsewhere)
    assert elsewhere.read_text(encoding="utf-8") == "# b — two\n"
    assert not (tmp_path / "other.md").exists()
    assert json.loads((tmp_path / "other.json").read_text()) == {"b": 2}


def test_creates_the_parent_folder(tmp_path: Path):
    out = tmp_path / "a" / "b" / "c" / "res.json"
    results_io.write_results(out, {"x": np.float64(1.0)}, "x\n")
    assert json.loads(out.read_text()) == {"x": 1.0}
    assert out.with_suffix(".md").read_text() == "x\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["res.json", "res.md"]  # no temporary files

    copy = tmp_path / "copies" / "deep" / "res.json"
    results_io.write_json(copy, {"x": 1})
    assert copy.read_text() == '{\n  "x": 1\n}\n'
    assert not copy.with_suffix(".md").exists()  # the JSON alone


def test_files_get_the_same_permissions_as_write_text(tmp_path: Path):
    out = tmp_path / "res.json"
    results_io.write_results(out, {"a": 1}, "a\n")
    reference = tmp_path / "reference.txt"
    reference.write_text("a\n")
    mode = stat.S_IMODE(reference.stat().st_mode)
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert stat.S_IMODE(out.with_suffix(".md").stat().st_mode) == mode


def _written(tmp_path: Path) -> tuple[Path, str, str]:
    out = tmp_path / "res.json"
    results_io.write_results(out, {"old": 1}, "# old\n")
    return out, out.read_text(), out.with_suffix(".md").read_text()


def test_a_value_that_cannot_be_serialised_leaves_the_old_result(tmp_path: Path, monkeypatch):
    out, old_json, old_md = _written(tmp_path)

    class Unwritable:
        pass

    def refuse(value):
        raise TypeError(f"cannot serialise {type(value).__name__}")

    monkeypatch.setattr(results_io, "json_default", refuse)
    with pytest.raises(TypeError, match="Unwritable"):
        results_io.write_results(out, {"new": [1, 2, Unwritable()]}, "# new\n")
    assert out.read_text() == old_json
    assert out.with_suffix(".md").read_text() == old_md
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.json", "res.md"]


def test_a_failure_after_the_temporary_file_is_written_leaves_the_old_result(tmp_path: Path, monkeypatch):
    out, old_json, old_md = _written(tmp_path)
    real_replace = os.replace
    seen: list[Path] = []

    def interrupted(src, dst):
        seen.append(Path(src))
        assert Path(src).parent == Path(dst).parent  # the temporary file sits beside the target
        assert Path(src).read_text() == json.dumps({"new": 2}, indent=2) + "\n"  # written in full
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        results_io.write_results(out, {"new": 2}, "# new\n")
    monkeypatch.setattr(os, "replace", real_replace)

    assert seen and not seen[0].exists()
    assert out.read_text() == old_json
    assert out.with_suffix(".md").read_text() == old_md
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.json", "res.md"]
