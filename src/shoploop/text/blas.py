"""Keep numpy's BLAS to one thread while serving, so it does not fight torch for the cores.

OpenBLAS (numpy's BLAS here) keeps its worker threads spinning for a while after every call
that it split across threads, waiting for the next one. A search request makes small BLAS
calls (dense scores of the lexical candidates, the fusion's weighted sum) and then runs the
cross-encoder in torch on the same cores: on the 2-core box the spinning workers halved the
cross-encoder's speed — top-50 scoring went from p50 86 ms to 165-184 ms when a matrix-vector
product over the catalog ran just before it, and back to 86 ms with BLAS on one thread
(micro-benchmark, idle machine); in benchmarks/search_relevance.py the cross-encoder's top-50
p99 went from 185 to 105 ms and the torch query encoder got faster too (dense p50 9.4 -> 7.4 ms).
The per-request BLAS work is small: a product over a few hundred candidate rows takes the same
~12 us on one thread as on two; an exact scan of all 55k vectors (filtered dense search) goes
from 1.6 to 3.1 ms. Model training in the serving process (background retrains) also runs its
BLAS on one thread, which keeps the other core for requests; separate training processes and
benchmarks can set their own limit.
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
