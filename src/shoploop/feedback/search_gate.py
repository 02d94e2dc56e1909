"""Promotion gate for fine-tuned search models (the text encoder and the cross-encoder).

Each held-out clicked search is ranked twice — by the active system and by the same system with
only the candidate model swapped in — and each ranking is scored by where it puts the products
the shopper clicked, carted or bought (graded like the learned ranker's labels):

    NDCG@k = sum over outcome items i ranked <= k of gain_i / log2(1 + rank_i) / ideal DCG,
    gain_i = (2^label_i - 1) * min(1 / theta(logged slot of i), max_weight)

The examination weight is the ranker gate's correction for position bias: a click at a slot
few shoppers look at is stronger evidence than a click at the top.

What is ranked (`SearchGateConfig.replay`):
- "shown" (default): each side re-orders the products the logged list showed. Shoppers could
  only act on those, so both sides are judged on the same set and neither is credited or
  blamed for products nobody saw.
- "catalog": each side searches the whole catalog for the logged query. It also sees what a
  candidate retrieves that was never shown — but such products carry no outcome, so every
  product the candidate brings up in place of a shown one counts against it. On the Home Depot
  click simulation (benchmarks/click_finetune.py --gate) an encoder the relevance judgments show
  is better was rejected by this mode and promoted by "shown".

Either way a candidate must be ahead by `min_gain` on average, and the paired bootstrap
interval of the difference must not reach below `-tolerance`.

Held-out lists are the most recent clicked searches; the candidate is trained only on feedback
logged before the first of them (`recent_holdout`), so the gate asks whether it generalises
forward in time, as it will have to once promoted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from shoploop.evaluation.ope import bootstrap_ci
from shoploop.feedback.click_models import ExaminationCurve
from shoploop.feedback.gate import GateDecision
from shoploop.feedback.training_data import LoggedList

# a held-out list -> item ids, best first (its query searched, or its shown items re-ordered)
RankFn = Callable[[LoggedList], Sequence[str]]
Replay = Literal["shown", "catalog"]


@dataclass(frozen=True)
class SearchGateConfig:
    holdout_fraction: float = 0.2  # most recent share of clicked searches held out
    min_lists: int = 30  # fewer held-out clicked searches than this: not enough evidence
    min_gain: float = 0.0  # mean NDCG@k the candidate must gain over the active system
    tolerance: float = 0.01  # how far below zero the difference's CI may reach
    k: int = 10
    max_weight: float = 10.0  # clip on 1 / examination probability
    n_boot: int = 200
    seed: int = 0
    replay: Replay = "shown"  # re-order each held-out list's shown products, or search the catalog

    def __post_init__(self) -> None:
        if self.replay not in ("shown", "catalog"):
            raise ValueError(f"replay must be 'shown' or 'catalog', got {self.replay!r}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction!r}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k!r}")


def recent_holdout(
    lists: Sequence[LoggedList], fraction: float
) -> tuple[list[LoggedList], list[LoggedList], float | None]:
    """(earlier clicked searches, the most recent `fraction` of them, the held-out cut-off time).

    Only searches with a query and a click count; the cut-off is the first held-out list's
    timestamp (None when nothing is held out), so training on feedback logged strictly before it
    never sees a held-out list.
    """
    usable = sorted((lst for lst in lists if lst.query and lst.clicked), key=lambda lst: lst.timestamp)
    n_held = int(len(usable) * fraction)
    if n_held == 0:
        return usable, [], None
    cut = usable[len(usable) - n_held].timestamp
    earlier = [lst for lst in usable if lst.timestamp < cut]
    held = [lst for lst in usable if lst.timestamp >= cut]
    return earlier, held, cut


def replay_ndcg(
    ranked: Sequence[str],
    outcome: LoggedList,
    *,
    k: int = 10,
    curve: ExaminationCurve | None = None,
    max_weight: float = 10.0,
) -> float:
    """NDCG@k of a fresh ranking against what the shopper did with the logged list."""
    clicked = outcome.labels > 0
    gains = (2.0 ** outcome.labels[clicked].astype(float)) - 1.0
    if curve is not None:
        gains = gains * np.minimum(1.0 / curve.at(outcome.positions[clicked]), max_weight)
    gain_of = dict(zip(np.asarray(outcome.items)[clicked].tolist(), gains.tolist(), strict=True))
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = sum(gain_of.get(item, 0.0) * discounts[r] for r, item in enumerate(list(ranked)[:k]))
    ideal = float((np.sort(gains)[::-1][:k] * discounts[: min(k, len(gains))]).sum())
    return float(dcg / ideal) if ideal > 0 else 0.0


class SearchGate:
    def __init__(self, config: SearchGateConfig = SearchGateConfig()) -> None:
        self.config = config

    def evaluate(
        self,
        held_out: Sequence[LoggedList],
        candidate: RankFn,
        active: RankFn,
        curve: ExaminationCurve | None = None,
    ) -> GateDecision:
        cfg = self.config
        held = [lst for lst in held_out if lst.query and lst.clicked]
        base = {"held_out_searches": len(held), "gate": asdict(cfg)}
        if len(held) < cfg.min_lists:
            return GateDecision(
                False, f"not enough held-out clicked searches ({len(held)} < {cfg.min_lists})", base
            )
        kw = {"k": cfg.k, "curve": curve, "max_weight": cfg.max_weight}
        cand = np.array([replay_ndcg(candidate(lst), lst, **kw) for lst in held])
        act = np.array([replay_ndcg(active(lst), lst, **kw) for lst in held])
        diff = bootstrap_ci(
            lambda d: float(np.mean(d["diff"])), {"diff": cand - act}, n_boot=cfg.n_boot, seed=cfg.seed
        )
        metrics = {
            **base,
            f"replay_ndcg{cfg.k}_candidate": float(cand.mean()),
            f"replay_ndcg{cfg.k}_active": float(act.mean()),
            f"replay_ndcg{cfg.k}_delta": diff.estimate,
            f"replay_ndcg{cfg.k}_delta_ci": [diff.low, diff.high],
            "position_weighted": curve is not None,
            "replay": cfg.replay,
        }
        summary = (
            f"replay NDCG@{cfg.k} {cand.mean():.4f} vs active {act.mean():.4f} "
            f"(difference {diff.estimate:+.4f}, 95% CI [{diff.low:+.4f}, {diff.high:+.4f}], "
            f"{len(held)} held-out searches, {cfg.replay} products)"
        )
        if diff.estimate <= cfg.min_gain:
            return GateDecision(False, f"no gain: {summary}", metrics)
        if diff.low < -cfg.tolerance:
            return GateDecision(False, f"too uncertain: {summary}", metrics)
        return GateDecision(True, f"better: {summary}", metrics)
