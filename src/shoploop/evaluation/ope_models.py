"""Reward models for the direct method and doubly robust estimators.

* ``PBMCTRModel`` — context-free click model for ranked lists: P(click | item a, slot p) =
  theta_a * kappa_p (the position-based model, Craswell et al., 2008). Slot factors come from the
  slot totals (unbiased when the logger places items independently of slot, e.g. uniform random);
  item rates pool all slots, and are shrunk towards the overall rate by empirical Bayes: a Beta
  prior fitted by beta-binomial marginal likelihood (so the amount of shrinkage is chosen by the
  training log alone). With ~1 click per item, unshrunk per-item rates are mostly noise.
* ``CellCTRModel`` — per (item, slot) rates shrunk towards the PBM prediction (hierarchical EB):
  lets the data depart from the PBM where it has the evidence to.
* ``LogisticRewardModel`` — logistic regression on [context, item one-hot, slot one-hot,
  item features] with K-fold cross-fitting, so DR's correction term is not computed on rows the
  model was trained on (Chernozhukov et al., 2018).

All follow the estimator contract: ``__init__`` stores a frozen config, ``fit`` returns self,
learned state ends in ``_``, ``save``/``load`` write JSON + ``.npz``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import betaln

__all__ = [
    "CellCTRConfig",
    "CellCTRModel",
    "LogisticRewardConfig",
    "LogisticRewardModel",
    "PBMCTRConfig",
    "PBMCTRModel",
    "beta_binomial_loglik",
    "fit_beta_prior",
]

FloatArray = NDArray[np.float64]
_STRENGTH_GRID = np.logspace(0, 7, 141)


def beta_binomial_loglik(
    clicks: ArrayLike, trials: ArrayLike, mean: float | ArrayLike, strength: float
) -> float:
    """Log marginal likelihood of the counts under Beta(mean * s, (1 - mean) * s) rates, up to the
    binomial coefficients (which do not depend on the prior, so comparisons between priors are exact)."""
    c = np.asarray(clicks, dtype=np.float64).reshape(-1)
    m = np.asarray(trials, dtype=np.float64).reshape(-1)
    mu = np.clip(np.broadcast_to(np.asarray(mean, dtype=np.float64), c.shape), 1e-9, 1 - 1e-9)
    a, b = mu * strength, (1 - mu) * strength
    return float((betaln(c + a, np.maximum(m - c, 0.0) + b) - betaln(a, b)).sum())


def fit_beta_prior(
    clicks: ArrayLike, trials: ArrayLike, mean: float | ArrayLike | None = None, grid: ArrayLike | None = None
) -> tuple[FloatArray, float]:
    """Empirical-Bayes Beta prior for many small binomial rates.

    clicks, trials: (m,) per group (trials may be fractional, e.g. position-weighted exposures).
    mean: the prior mean, a scalar or one per group (m,); default the pooled rate. The strength
    ``s = a + b`` maximises the beta-binomial marginal likelihood over a log grid: a large ``s``
    means the groups look like their prior means given the binomial noise (shrink hard).
    Returns ``(mean (m,), strength)``; the posterior mean of group i is
    ``(clicks_i + mean_i s) / (trials_i + s)``.
    """
    c = np.asarray(clicks, dtype=np.float64).reshape(-1)
    m = np.asarray(trials, dtype=np.float64).reshape(-1)
    pooled = float(c.sum() / max(m.sum(), 1e-12))
    mu = np.broadcast_to(np.asarray(pooled if mean is None else mean, dtype=np.float64), c.shape)
    mu = np.clip(mu, 1e-9, 1 - 1e-9)
    best_s, best_ll = 1.0, -np.inf
    for s in _STRENGTH_GRID if grid is None else np.asarray(grid, dtype=np.float64):
        ll = beta_binomial_loglik(c, m, mu, float(s))
        if ll > best_ll:
            best_s, best_ll = float(s), ll
    return mu.copy(), best_s


def _counts(action: ArrayLike, position: ArrayLike, reward: ArrayLike, n_actions: int, len_list: int):
    a = np.asarray(action, dtype=np.int64).reshape(-1)
    p = np.asarray(position, dtype=np.int64).reshape(-1)
    r = np.asarray(reward, dtype=np.float64).reshape(-1)
    n = np.zeros((n_actions, len_list))
    c = np.zeros((n_actions, len_list))
    np.add.at(n, (a, p), 1.0)
    np.add.at(c, (a, p), r)
    return n, c


@dataclass(frozen=True)
class PBMCTRConfig:
    n_actions: int
    len_list: int
    # "eb": prior strength by marginal likelihood; a number: fixed strength; 0: no shrinkage (MLE).
    shrinkage: Literal["eb"] | float = "eb"


class PBMCTRModel:
    """P(click | a, p) = theta_a * kappa_p with empirical-Bayes shrunk theta."""

    def __init__(self, config: PBMCTRConfig) -> None:
        self.config = config

    def fit(
        self,
        action: ArrayLike,
        position: ArrayLike,
        reward: ArrayLike,
        item_prior: ArrayLike | None = None,
    ) -> Self:
        """action, position (0-based), reward: (n,) logged rows.

        item_prior: optional (n_actions,) side information about items' relative click rates
        (e.g. historical CTRs). Only its *shape* is used: the prior means are ``scale * item_prior``
        with ``scale`` fitted on this log, and the prior strength still comes from this log's
        marginal likelihood, so the log decides how far to trust the side information.
        """
        cfg = self.config
        n, c = _counts(action, position, reward, cfg.n_actions, cfg.len_list)
        overall = c.sum() / max(n.sum(), 1.0)
        slot_rate = np.divide(c.sum(0), n.sum(0), out=np.full(cfg.len_list, overall), where=n.sum(0) > 0)
        # kappa is relative to the overall rate, so theta stays on the click-rate scale.
        kappa = slot_rate / overall if overall > 0 else np.ones(cfg.len_list)
        exposure = n @ kappa  # expected clicks per unit theta
        clicks = c.sum(1)
        if item_prior is None:
            mean: FloatArray | float = float(overall)
        else:
            h = np.asarray(item_prior, dtype=np.float64).reshape(-1)
            if h.shape[0] != cfg.n_actions or (h <= 0).any():
                raise ValueError("item_prior must hold n_actions positive numbers")
            mean = h * clicks.sum() / max(float(exposure @ h), 1e-12)
        if cfg.shrinkage == "eb":
            mu, s = fit_beta_prior(clicks, np.maximum(exposure, 1e-12), mean=mean)
        else:
            mu, s = np.broadcast_to(np.asarray(mean, dtype=np.float64), clicks.shape), float(cfg.shrinkage)
        self.kappa_ = kappa
        self.theta_ = (clicks + mu * s) / np.maximum(exposure + s, 1e-12)
        self.prior_mean_, self.prior_strength_ = np.array(mu, dtype=np.float64), float(s)
        # evidence for this prior on this log: compare priors (e.g. with vs without side information)
        self.log_evidence_ = beta_binomial_loglik(clicks, np.maximum(exposure, 1e-12), mu, s)
        return self

    def predict(self) -> FloatArray:
        """(n_actions, len_list) click probabilities."""
        return np.clip(self.theta_[:, None] * self.kappa_[None, :], 0.0, 1.0)

    def save(self, directory: Path) -> None:
        _save(directory, asdict(self.config), theta_=self.theta_, kappa_=self.kappa_,
              prior_mean_=self.prior_mean_, prior_strength_=np.array([self.prior_strength_]))  # fmt: skip

    @classmethod
    def load(cls, directory: Path) -> Self:
        cfg, arrs = _load(directory)
        model = cls(PBMCTRConfig(**cfg))
        model.theta_, model.kappa_ = arrs["theta_"], arrs["kappa_"]
        model.prior_mean_, model.prior_strength_ = arrs["prior_mean_"], float(arrs["prior_strength_"][0])
        return model


@dataclass(frozen=True)
class CellCTRConfig:
    n_actions: int
    len_list: int
    item_shrinkage: Literal["eb"] | float = "eb"
    cell_shrinkage: Literal["eb"] | float = "eb"


class CellCTRModel:
    """Per (item, slot) click rate, shrunk towards the PBM prediction theta_a * kappa_p."""

    def __init__(self, config: CellCTRConfig) -> None:
        self.config = config

    def fit(self, action: ArrayLike, position: ArrayLike, reward: ArrayLike) -> Self:
        cfg = self.config
        pbm = PBMCTRModel(PBMCTRConfig(cfg.n_actions, cfg.len_list, cfg.item_shrinkage))
        pbm.fit(action, position, reward)
        prior = pbm.predict()
        n, c = _counts(action, position, reward, cfg.n_actions, cfg.len_list)
        if cfg.cell_shrinkage == "eb":
            s = fit_beta_prior(c.ravel(), n.ravel(), mean=prior.ravel())[1]
        else:
            s = float(cfg.cell_shrinkage)
        self.pbm_ = pbm
        self.cell_strength_ = s
        self.q_ = (c + prior * s) / np.maximum(n + s, 1e-12)
        return self

    def predict(self) -> FloatArray:
        """(n_actions, len_list) click probabilities."""
        return self.q_

    def save(self, directory: Path) -> None:
        _save(directory, asdict(self.config), q_=self.q_, cell_strength_=np.array([self.cell_strength_]))

    @classmethod
    def load(cls, directory: Path) -> Self:
        cfg, arrs = _load(directory)
        model = cls(CellCTRConfig(**cfg))
        model.q_, model.cell_strength_ = arrs["q_"], float(arrs["cell_strength_"][0])
        return model


@dataclass(frozen=True)
class LogisticRewardConfig:
    n_actions: int
    len_list: int
    n_folds: int = 2  # 1 = fit and predict on all rows (no cross-fitting)
    l2: float = 1.0  # inverse of sklearn's C
    seed: int = 0


class LogisticRewardModel:
    """Logistic regression on [context, item one-hot, slot one-hot, item features], cross-fitted."""

    def __init__(self, config: LogisticRewardConfig) -> None:
        self.config = config

    def _features(
        self, context: FloatArray, action: NDArray[np.int64], position: NDArray[np.int64]
    ) -> FloatArray:
        cfg = self.config
        eye_a = np.eye(cfg.n_actions)[action]
        eye_p = np.eye(cfg.len_list)[position]
        parts = [context, eye_a, eye_p]
        if self.action_context_ is not None:
            parts.append(self.action_context_[action])
        return np.hstack(parts)

    def fit_predict(
        self,
        context: ArrayLike,
        action: ArrayLike,
        position: ArrayLike,
        reward: ArrayLike,
        action_context: ArrayLike | None = None,
    ) -> FloatArray:
        """Fit with K-fold cross-fitting; return (n, n_actions, len_list) out-of-fold predictions."""
        from sklearn.linear_model import LogisticRegression  # lazy: only DM/DR users need sklearn

        cfg = self.config
        x = np.asarray(context, dtype=np.float64)
        a = np.asarray(action, dtype=np.int64).reshape(-1)
        p = np.asarray(position, dtype=np.int64).reshape(-1)
        r = np.asarray(reward, dtype=np.float64).reshape(-1)
        self.action_context_ = (
            None if action_context is None else np.asarray(action_context, dtype=np.float64)
        )
        n = a.shape[0]
        rng = np.random.default_rng(cfg.seed)
        folds = rng.permutation(n) % max(cfg.n_folds, 1)
        out = np.zeros((n, cfg.n_actions, cfg.len_list))
        self.models_ = []
        for k in range(max(cfg.n_folds, 1)):
            train = folds != k if cfg.n_folds > 1 else np.ones(n, bool)
            test = folds == k if cfg.n_folds > 1 else np.ones(n, bool)
            feats = self._features(x[train], a[train], p[train])
            if r[train].min() == r[train].max():  # one class only: predict the constant
                const = float(r[train].mean())
                out[test] = const
                self.models_.append(const)
                continue
            clf = LogisticRegression(C=1.0 / cfg.l2, max_iter=1000)
            clf.fit(feats, r[train])
            self.models_.append(clf)
            xt = x[test]
            for act in range(cfg.n_actions):
                for pos in range(cfg.len_list):
                    f = self._features(xt, np.full(xt.shape[0], act), np.full(xt.shape[0], pos))
                    out[test, act, pos] = clf.predict_proba(f)[:, 1]
        return out


def _save(directory: Path, config: dict, **arrays: np.ndarray) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    np.savez(directory / "state.npz", **arrays)


def _load(directory: Path) -> tuple[dict, dict[str, np.ndarray]]:
    directory = Path(directory)
    cfg = json.loads((directory / "config.json").read_text())
    with np.load(directory / "state.npz", allow_pickle=False) as z:
        arrs = {k: z[k] for k in z.files}
    return cfg, arrs
