"""Keep numpy's BLAS to one thread while serving, so it does not fight torch for the cores.

OpenBLAS (numpy's BLAS here) keeps its worker threads spinning for a while after every call
that it split across threads, waiting for the next one. A search request makes small BLAS
calls (dense scores of the lexical candidates, the fusion's weighted sum) and then runs the
cross-encoder in torch on the same cores: on the 2-core box the spinning workers halved the
cross-encoder's speed — top-50 scoring went from p50 86 ms to 165-184 ms when a matrix-vector
product over the catalog ran just before it, and back to 86 ms with BLAS on one thread
(micro-benchmark, idle machine). The per-request BLAS work is tiny (a few hundred rows), so one
thread costs it nothing measurable; heavy batch work (training, benchmarks) can raise it again.
"""

from __future__ import annotations

from threadpoolctl import threadpool_info, threadpool_limits

__all__ = ["blas_threads", "limit_blas_threads"]


def limit_blas_threads(n: int = 1) -> None:
    """Set every loaded BLAS library to `n` threads for the rest of the process."""
    if n < 1:
        raise ValueError("blas threads: need at least 1")
    threadpool_limits(limits=n, user_api="blas")


def blas_threads() -> int | None:
    """Threads of the first loaded BLAS library (None when numpy has not loaded one)."""
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            return int(pool["num_threads"])
    return None
