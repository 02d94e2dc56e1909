"""Promotion gate: a candidate ranker replaces the active one only if it is not worse.

Both are judged on the same recent held-out logs (lists the candidate was not trained on):

* offline NDCG@10 of re-ranking each held-out list's shown items against the graded
  labels shoppers gave them (click < cart < purchase), each label's gain divided by the
  examination probability of the slot it was clicked in (clipped). Without that, the
  active ranker wins on its own logs by construction: shoppers clicked its top slots
  because they looked there, and a candidate that disagrees looks worse than it is
  (the counterfactual-evaluation argument of Joachims et al., 2017);
* an off-policy estimate of clicks per list under the position-based model
  (position-wise IPS, Li et al., 2018): an item clicked at logged slot k and moved to
  slot k' by a policy contributes theta_k' / theta_k clicks (weights clipped). The
  candidate-minus-active difference gets a paired bootstrap CI (`evaluation.ope`).

The candidate is promoted only if neither NDCG nor the click estimate is worse than the
active one's by more than a tolerance; every decision, with its metrics, is written to
the registry (`promote` or `reject`), so the shop can audit why a model went live.
When no ranker is active yet, "active" is the logged order itself (what shoppers saw).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from shoploop.evaluation.metrics import ndcg_at_k
from shoploop.evaluation.ope import bootstrap_ci
from shoploop.feedback.click_models import ExaminationCurve
from shoploop.feedback.training_data import FeaturizedList
from shoploop.store.protocols import ArtifactStore, ModelVersion

Scorer = Callable[[np.ndarray], np.ndarray]  # (n, d) features -> (n,) scores


@dataclass(frozen=True)
class GateConfig:
    ndcg_tolerance: float = 0.005  # absolute NDCG@10 a candidate may lose
    ctr_tolerance: float = 0.02  # relative drop of estimated clicks per list allowed
    max_weight: float = 10.0  # clip on theta_new / theta_logged
    min_lists: int = 30  # fewer held-out lists with clicks than this: not enough evidence
    n_boot: int = 200
    k: int = 10
    seed: int = 0


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    metrics: dict[str, Any]


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each item under `scores` (ties keep logged order)."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def _mean_of(key: str) -> Callable[[Mapping[str, np.ndarray]], float]:
    return lambda data: float(np.mean(data[key]))


def list_ndcg(labels: np.ndarray, scores: np.ndarray, k: int, weights: np.ndarray | None = None) -> float:
    """NDCG@k of ordering one list's items by `scores` against graded `labels`.

    Gain of an item = (2^label - 1) * weight (weight = clipped 1/examination of the slot it
    was logged in; None = 1). labels, scores, weights: (n,).
    """
    raw = (2.0**labels) - 1.0
    if weights is not None:
        raw = raw * weights
    order = np.argsort(-scores, kind="stable")
    return float(ndcg_at_k(raw[order][None, :], k, np.sort(raw)[::-1][None, :])[0])


def pbm_clicks(
    labels: np.ndarray, logged_pos: np.ndarray, scores: np.ndarray, curve: ExaminationCurve, max_weight: float
) -> float:
    """Estimated clicks on one list if it were ordered by `scores` (position-wise IPS)."""
    clicked = labels > 0
    if not clicked.any():
        return 0.0
    new_pos = _ranks(scores)
    w = curve.at(new_pos[clicked]) / curve.at(logged_pos[clicked])
    return float(np.minimum(w, max_weight).sum())


class PromotionGate:
    def __init__(self, config: GateConfig = GateConfig()) -> None:
        self.config = config

    def evaluate(
        self,
        held_out: Sequence[FeaturizedList],
        candidate: Scorer,
        active: Scorer | None,
        curve: ExaminationCurve,
    ) -> GateDecision:
        cfg = self.config
        with_clicks = [f for f in held_out if f.logged.clicked]
        if len(with_clicks) < cfg.min_lists:
            return GateDecision(
                False,
                f"not enough held-out lists with clicks ({len(with_clicks)} < {cfg.min_lists})",
                {"held_out_lists": len(held_out), "held_out_clicked_lists": len(with_clicks)},
            )
        ndcg_c, ndcg_a, clicks_c, clicks_a = [], [], [], []
        for f in held_out:
            lab, pos = f.logged.labels, f.logged.positions
            w = np.minimum(1.0 / curve.at(pos), cfg.max_weight)
            s_c = candidate(f.X)
            s_a = active(f.X) if active is not None else -pos.astype(float)
            clicks_c.append(pbm_clicks(lab, pos, s_c, curve, cfg.max_weight))
            clicks_a.append(pbm_clicks(lab, pos, s_a, curve, cfg.max_weight))
            if f.logged.clicked:
                ndcg_c.append(list_ndcg(lab, s_c, cfg.k, w))
                ndcg_a.append(list_ndcg(lab, s_a, cfg.k, w))
        cc, ca = np.array(clicks_c), np.array(clicks_a)
        # Plain means of per-list estimates (the PBM re-weighting is already inside each one).
        diff = bootstrap_ci(_mean_of("diff"), {"diff": cc - ca}, n_boot=cfg.n_boot, seed=cfg.seed)
        ci_c = bootstrap_ci(_mean_of("r"), {"r": cc}, n_boot=cfg.n_boot, seed=cfg.seed)
        mean_nc, mean_na = float(np.mean(ndcg_c)), float(np.mean(ndcg_a))
        metrics: dict[str, Any] = {
            "held_out_lists": len(held_out),
            "held_out_clicked_lists": len(with_clicks),
            "ndcg": "IPW-weighted gains (position-debiased)",
            "ndcg10_candidate": mean_nc,
            "ndcg10_active": mean_na,
            "ndcg10_delta": mean_nc - mean_na,
            "clicks_per_list_candidate": ci_c.estimate,
            "clicks_per_list_candidate_ci": [ci_c.low, ci_c.high],
            "clicks_per_list_active": float(ca.mean()),
            "clicks_delta": diff.estimate,
            "clicks_delta_ci": [diff.low, diff.high],
            "examination_curve": curve.to_dict(),
            "gate": {k: v for k, v in asdict(cfg).items()},
        }
        problems = []
        if mean_nc < mean_na - cfg.ndcg_tolerance:
            problems.append(f"NDCG@10 {mean_nc:.4f} < active {mean_na:.4f} - {cfg.ndcg_tolerance}")
        allowed = cfg.ctr_tolerance * max(float(ca.mean()), 1e-9)
        if diff.estimate < -allowed:
            problems.append(
                f"estimated clicks/list {ci_c.estimate:.4f} below active {ca.mean():.4f} by more than "
                f"{cfg.ctr_tolerance:.0%} (diff CI [{diff.low:.4f}, {diff.high:.4f}])"
            )
        if problems:
            return GateDecision(False, "; ".join(problems), metrics)
        return GateDecision(
            True,
            f"not worse: NDCG@10 {mean_nc:.4f} vs {mean_na:.4f}, "
            f"clicks/list {ci_c.estimate:.4f} vs {ca.mean():.4f}",
            metrics,
        )

    @staticmethod
    def record(
        registry: ArtifactStore,
        version: ModelVersion,
        decision: GateDecision,
        *,
        promote: Callable[[str, int, str], ModelVersion] | None = None,
    ) -> ModelVersion:
        """Write the decision and its metrics into the registry; returns the updated version.

        `promote(name, version, reason)` lets the engine activate the model as it is promoted
        (default: `registry.promote`, which only flips the status).
        """
        gate_metrics = {"gate": decision.metrics, "gate_reason": decision.reason}
        if decision.promote:
            registry.update_metrics(version.name, version.version, gate_metrics)
            reason = f"gate: {decision.reason}"
            if promote is not None:
                return promote(version.name, version.version, reason)
            return registry.promote(version.name, version.version, reason=reason)
        return registry.reject(
            version.name, version.version, reason=f"gate: {decision.reason}", metrics=gate_metrics
        )
