"""numpy's BLAS thread limit used while serving (shoploop.text.blas)."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from shoploop.text.blas import blas_threads, limit_blas_threads


def test_limit_sets_the_blas_thread_count_and_numpy_still_computes():
    np.ones((4, 4)) @ np.ones(4)  # make sure numpy's BLAS is loaded
    with threadpool_limits(limits=None):  # restore whatever the process had afterwards
        threadpool_limits(limits=2, user_api="blas")
        assert blas_threads() == 2  # so the check below sees the limit change something
        limit_blas_threads(1)
        assert blas_threads() == 1
        v = np.arange(600, dtype=np.float64).reshape(200, 3) @ np.array([1.0, 0.0, -1.0])
        assert v[0] == -2.0 and v[-1] == -2.0


def test_zero_threads_is_refused():
    with pytest.raises(ValueError, match="blas threads"):
        limit_blas_threads(0)


def test_engine_start_puts_blas_on_one_thread():
    from shoploop.engine import EngineConfig, build_engine

    with threadpool_limits(limits=None):
        threadpool_limits(limits=2, user_api="blas")
        build_engine(EngineConfig()).start(progress=lambda m: None)
        assert blas_threads() == 1
