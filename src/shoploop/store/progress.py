"""Progress for work that reports itself in increments (bytes copied, rows erased)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]  # (done, total)


def running_total(total: int, report: Progress | None) -> Callable[[int], None]:
    """An `advance(n)` that adds `n` to what is done and passes `(done, total)` to `report`;
    the total grows with the work when the work outgrows its estimate (a file that grew while
    copied, rows imported while a purge ran)."""
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if report is not None:
            report(done, max(total, done))

    return advance
