"""Load a benchmark program (`benchmarks/NAME.py`) as a module for its smoke test."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """By path, so a test does not depend on the repository root being importable; registered in
    `sys.modules` as ``bench_NAME`` because dataclasses and worker processes look modules up there.
    The benchmarks directory goes on `sys.path` as it does when a program runs as a script, so a
    program can import its sibling modules (e.g. `implicit_mf`) by name."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.append(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None, name
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
