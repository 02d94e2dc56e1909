"""Cross-encoder re-ranker fine-tuned from the packaged all-MiniLM-L6-v2 weights.

The encoder reads ``[CLS] query [SEP] product text [SEP]`` and a fresh linear head (``num_labels=1``)
turns the pooled ``[CLS]`` state into one relevance logit. Two training objectives:

* ``loss="listwise"`` (default): groups of one positive + k negatives of the same query, softmax
  cross-entropy on the positive (the "localized contrastive" objective of Gao et al., ECIR 2021,
  "Rethink Training of BERT Rerankers in Multi-Stage Retrieval Pipeline"). Ranking only needs the
  order of a query's candidates, and this loss optimises exactly that; BCE spends capacity calibrating
  absolute scores across queries. Optionally mixed with a small pointwise term (``bce_weight``).
* ``loss="bce"``: pointwise binary cross-entropy against the graded label in [0, 1].

Training is CPU-bound, so it is shaped for 2 cores: short inputs (titles are short: 98% of
homedepot query+title pairs fit in 48 word pieces), batches of similar-length pairs padded only to
their longest (about 1.8x fewer padded tokens per step than random batches),
AdamW with linear warm-up and linear decay whose horizon is re-planned to what fits in the time budget
(so the learning rate actually anneals before the budget runs out), gradient clipping, early stopping
on the validation pools' NDCG@10, and a hard time budget that stops cleanly between steps.

Scoring backends: ``torch`` (at the configured ``precision``: fp32, or bf16 autocast on CPUs with
native bf16 units — see ``shoploop.text.precision``) and ``onnx-int8`` (the fine-tuned model
exported to ONNX and dynamically quantised to int8 with onnxruntime; faster than fp32 torch with
near-identical rankings — see ``benchmarks/reranker_probe.py``). ``auto`` picks torch where bf16 is
fast and int8 ONNX elsewhere (benchmarks/search_relevance.py, 300 validation queries: search + top-50
p50 fp32 208 ms vs bf16 88 ms, same NDCG@10).
Training runs its forward passes under the same precision (about 1.9x the steps per second in bf16).

Persistence: ``save(dir)`` writes ``cross_encoder.json`` (config + training record), ``model/``
(safetensors weights, HF config, tokenizer files) and, when exported, ``model.int8.onnx``. No pickle.
"""

from __future__ import annotations

import copy
import json
import math
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np

from shoploop.ranking.training_pairs import GradedPair, group_by_query
from shoploop.text.encoder import packaged_minilm_path, set_offline
from shoploop.text.onnx_export import export_onnx, quantize_int8, tensor_output
from shoploop.text.precision import Precision, autocast, keep_fp32, resolve_precision

__all__ = ["CrossEncoderConfig", "CrossEncoderReranker", "GradedPair", "blend_with_first_stage"]

Backend = Literal["auto", "torch", "onnx-int8"]
_SHAPE_BUCKET = 8  # batch rows and sequence length are padded to multiples of this when scoring
_CONFIG_FILE = "cross_encoder.json"
_MODEL_DIR = "model"
_ONNX_FP32 = "model.onnx"
_ONNX_INT8 = "model.int8.onnx"


@dataclass(frozen=True)
class CrossEncoderConfig:
    """Settings for `CrossEncoderReranker` (frozen; the estimator stores nothing else in ``__init__``).

    ``batch_size`` counts sequences per optimiser step in both modes, so a listwise step holds
    ``batch_size // group_size`` query groups and costs the same as a pointwise step.
    """

    model_path: str | None = None  # None = packaged all-MiniLM-L6-v2
    max_length: int = 48
    loss: Literal["listwise", "bce"] = "listwise"
    group_size: int = 4  # listwise: 1 positive + (group_size - 1) negatives
    positive_threshold: float = 0.5  # labels >= this can be a group's positive (rel >= 2 on a 1-3 scale)
    label_margin: float = 0.25  # a negative's label is at least this much below its positive's
    bce_weight: float = 0.0  # listwise mode: weight of an auxiliary pointwise BCE term
    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-4  # measured: 1e-4 beat 6e-5 on validation when only ~100-200 steps fit the budget
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    seed: int = 0
    time_budget_minutes: float = 20.0
    patience: int = 3  # evaluations without improvement before stopping
    # Early stopping may end training only once this share of the budget-fitted schedule has run:
    # at high learning rate the 150-pool validation NDCG plateaus noisily (measured on Home Depot: a
    # bf16 run stopped at 600 of ~1,400 steps), while the gains of the annealing phase come late.
    # 0.5 was still too early: a search_relevance run peaked on validation at step 400 of 1,152 by
    # noise, stopped at 700, and scored 0.439 blended on the test queries; with 0.8 the same setup
    # ran to step 1,100 and scored 0.445 (the committed result).
    min_schedule_share: float = 0.8
    # Training batches are cut from chunks of this many batches' worth of units sorted by token
    # length, then shuffled (0 = plain random batches). Why: each batch is padded to its longest
    # pair, and Home Depot query+title pairs average 26 word pieces while a random batch of 64 pads
    # to ~48, so nearly half of every step computed padding.
    length_sorted_chunk: int = 50
    eval_every_steps: int = 100
    max_valid_queries: int = 150
    min_delta: float = 1e-4
    num_threads: int = 2
    # Scoring sorts pairs by length and pads each batch to its own longest, so small batches waste
    # little padding: a top-50 head on a 2-core Xeon without AMX, int8 ONNX, p50/p99 154/167 ms in
    # batches of 64, 112/133 ms in batches of 16 (fp32 torch 212/228 -> 164/184 ms).
    score_batch_size: int = 16
    backend: Backend = "torch"
    precision: Precision = "auto"  # torch forward passes (training and scoring): fp32, bf16 or auto
    progress: bool = True
    log_every_steps: int = 10


@dataclass
class _TrainRecord:
    history: list[dict[str, float]] = field(default_factory=list)
    best_valid_ndcg: float | None = None
    best_step: int = 0
    steps: int = 0
    train_seconds: float = 0.0
    stopped_reason: str = ""
    precision: str = ""  # what the forward passes ran in ("fp32" or "bf16")


def _log(msg: str) -> None:
    print(f"[cross-encoder] {msg}", file=sys.stderr, flush=True)


def _ndcg10(scores: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """NDCG@k of one pool; gains 2^(2*label) - 1 equal 2^(rel-1) - 1 on the 1-3 relevance scale."""
    gains = np.power(2.0, 2.0 * labels) - 1.0
    order = np.argsort(-scores, kind="stable")[:k]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((gains[order] * disc[: len(order)]).sum())
    ideal = np.sort(gains)[::-1][:k]
    idcg = float((ideal * disc[: len(ideal)]).sum())
    return dcg / idcg if idcg > 0 else 0.0


def pool_ndcg(pools: Sequence[tuple[np.ndarray, np.ndarray]], k: int = 10) -> float:
    """Mean NDCG@k over (scores (n,), labels (n,)) pools; pools without any gain are skipped."""
    vals = [_ndcg10(s, y, k) for s, y in pools if float(np.max(y)) > 0]
    return float(np.mean(vals)) if vals else 0.0


class CrossEncoderReranker:
    """Scores (query, document) pairs with a fine-tuned MiniLM cross-encoder; higher = more relevant."""

    def __init__(self, config: CrossEncoderConfig = CrossEncoderConfig()) -> None:
        self.config = config

    # ------------------------------------------------------------------ model plumbing
    def _init_model(self, path: str) -> None:
        set_offline()
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        torch.set_num_threads(self.config.num_threads)
        torch.manual_seed(self.config.seed)  # the fresh head's initialisation
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "newly initialised head" is expected, not a warning
        try:
            self.model_ = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
        finally:
            hf_logging.set_verbosity(verbosity)
        self.model_.eval()
        self._fp32_head()
        self.tokenizer_ = AutoTokenizer.from_pretrained(path)
        self._text_lengths: dict[str, int] = {}  # word pieces per text, for length-sorted batches

    def _fp32_head(self) -> None:
        # bf16 autocast would round the final logits themselves; pooler + classifier stay fp32
        keep_fp32(getattr(self.model_, "classifier", None), getattr(self.model_.base_model, "pooler", None))

    def _encode(self, queries: Sequence[str], docs: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        # longest_first (not only_second) so that even a 10,000-character query is truncated safely
        enc = self.tokenizer_(
            list(queries),
            list(docs),
            truncation="longest_first",
            max_length=self.config.max_length,
            padding=False,
            return_attention_mask=False,
        )
        return list(zip(enc["input_ids"], enc["token_type_ids"], strict=True))

    def _collate(
        self, items: Sequence[tuple[list[int], list[int]]], *, bucket_rows: bool = False
    ) -> dict[str, np.ndarray]:
        """Pad to the longest sequence of this batch rounded up to a multiple of 8, int64 arrays;
        with ``bucket_rows`` also add blank rows up to a multiple of 8 (callers drop their scores).

        Why buckets: oneDNN builds (and caches) a kernel per input shape, and in bf16 building one
        is expensive. Scoring a top-50 head and then a judged pool of arbitrary size with exact
        shapes thrashed that cache (a micro-benchmark on the 2-core AMX box alternating such calls:
        top-50 p99 181 ms with exact shapes, 86 ms bucketed).
        """
        n, width = len(items), _round_up(max(len(ids) for ids, _ in items), _SHAPE_BUCKET)
        if bucket_rows:
            n = _round_up(n, _SHAPE_BUCKET)
        pad = self.tokenizer_.pad_token_id or 0
        input_ids = np.full((n, width), pad, dtype=np.int64)
        token_type = np.zeros((n, width), dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        for r, (ids, tt) in enumerate(items):
            input_ids[r, : len(ids)] = ids
            token_type[r, : len(tt)] = tt
            mask[r, : len(ids)] = 1
        mask[len(items) :, 0] = 1  # blank rows attend to one token, so nothing divides by zero
        return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": token_type}

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("CrossEncoderReranker is not fitted: call fit() or load() first")

    # ------------------------------------------------------------------ training
    def fit(self, train: Sequence[GradedPair], valid: Sequence[GradedPair] = ()) -> Self:
        """Fine-tune on ``train``; early-stop on NDCG@10 of re-ranking ``valid``'s per-query pools."""
        import torch

        cfg = self.config
        if not train:
            raise ValueError("fit() needs at least one training pair")
        self._init_model(cfg.model_path or packaged_minilm_path())
        rng = random.Random(cfg.seed)
        torch.manual_seed(cfg.seed)
        model = self.model_
        train = list(train)
        groups = group_by_query(train)
        doc_pool = sorted({p.doc for p in train})
        valid_pools = self._valid_pools(valid, rng)

        if cfg.loss == "listwise":
            n_units = sum(1 for p in train if p.label >= cfg.positive_threshold)
            per_step = max(1, cfg.batch_size // cfg.group_size)
            if n_units == 0:
                raise ValueError("listwise training needs pairs with label >= positive_threshold")
        else:
            n_units, per_step = len(train), cfg.batch_size
        steps_per_epoch = math.ceil(n_units / per_step)
        planned = max(1, steps_per_epoch * cfg.epochs)
        horizon = [planned]  # mutable: re-planned once we know how many steps fit in the budget

        def lr_factor(step: int) -> float:
            # warm-up is a share of the *current* horizon: on a slow machine the budget may allow only a
            # few hundred of the planned steps, and a warm-up sized for the full plan would never finish
            warmup = max(1, int(cfg.warmup_ratio * horizon[0]))
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (horizon[0] - step) / max(1, horizon[0] - warmup))

        no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
        params = [
            {
                "params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)],
                "weight_decay": cfg.weight_decay,
            },
            {
                "params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)],
                "weight_decay": 0.0,
            },
        ]
        opt = torch.optim.AdamW(params, lr=cfg.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)

        rec = _TrainRecord()
        budget_s = cfg.time_budget_minutes * 60.0
        t0 = time.perf_counter()
        best_state: dict[str, Any] | None = None
        bad_evals, step, loss_acc, loss_n = 0, 0, 0.0, 0
        eval_s, n_evals = 0.0, 0  # time spent validating, kept out of the step-rate estimate
        if valid_pools:
            base = self._eval_pools(valid_pools)
            eval_s, n_evals = time.perf_counter() - t0, 1
            rec.history.append({"step": 0, "valid_ndcg": base, "elapsed": 0.0})
            rec.best_valid_ndcg, best_state = base, copy.deepcopy(model.state_dict())
            if cfg.progress:
                _log(f"valid NDCG@10 before training {base:.4f} ({len(valid_pools)} pools)")
        rec.precision = resolve_precision(cfg.precision)
        if cfg.progress:
            _log(
                f"{cfg.loss}: {n_units} units/epoch, {steps_per_epoch} steps/epoch, planned {planned} steps, "
                f"{rec.precision}"
            )
        model.train()
        stop = ""
        for epoch in range(cfg.epochs):
            batches = (
                self._listwise_batches(groups, doc_pool, rng, per_step)
                if cfg.loss == "listwise"
                else self._pointwise_batches(train, rng, per_step)
            )
            for batch in batches:
                loss = self._step_loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                opt.step()
                sched.step()
                step += 1
                loss_acc += float(loss.detach())
                loss_n += 1
                elapsed = time.perf_counter() - t0
                if step in (5, 20, 50):
                    self._replan(
                        horizon, planned, step, elapsed, eval_s, n_evals, budget_s, bool(valid_pools)
                    )
                if cfg.progress and step % cfg.log_every_steps == 0:
                    rate = step / max(1e-9, elapsed - eval_s)
                    target = min(horizon[0], planned)
                    eta = (target - step) / rate
                    _log(
                        f"epoch {epoch + 1} step {step}/{target} loss {loss_acc / loss_n:.4f} "
                        f"{rate:.2f} step/s ({rate * cfg.batch_size:.0f} seq/s) "
                        f"lr {sched.get_last_lr()[0]:.2e} ETA {eta / 60:.1f} min"
                    )
                if step % cfg.log_every_steps == 0:
                    rec.history.append({"step": step, "train_loss": loss_acc / loss_n, "elapsed": elapsed})
                    loss_acc, loss_n = 0.0, 0
                if valid_pools and step % cfg.eval_every_steps == 0:
                    te = time.perf_counter()
                    bad_evals, best_state = self._evaluate(valid_pools, rec, step, t0, bad_evals, best_state)
                    eval_s, n_evals = eval_s + time.perf_counter() - te, n_evals + 1
                    self._replan(
                        horizon, planned, step, time.perf_counter() - t0, eval_s, n_evals, budget_s, True
                    )
                    if bad_evals >= cfg.patience and step >= cfg.min_schedule_share * horizon[0]:
                        stop = "early_stopping"
                if not stop and time.perf_counter() - t0 >= budget_s:
                    stop = "time_budget"
                if not stop and step >= horizon[0]:
                    stop = "schedule_end"
                if stop:
                    break
            if stop:
                break
        if not stop:
            stop = "epochs_done"
        if (
            valid_pools
            and (not rec.history or rec.history[-1].get("step") != step)
            and stop != "early_stopping"
        ):
            bad_evals, best_state = self._evaluate(valid_pools, rec, step, t0, bad_evals, best_state)
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        rec.steps, rec.stopped_reason = step, stop
        rec.train_seconds = time.perf_counter() - t0
        self.record_ = rec
        self._onnx_session = None
        self._onnx_path = None
        if self.scoring_backend() == "onnx-int8":
            # export now so the first served query does not pay for it (kept in a temp dir until save())
            self.export_onnx(Path(tempfile.mkdtemp(prefix="shoploop-ce-onnx-")))
        if cfg.progress:
            _log(
                f"stopped ({stop}) after {step} steps, {rec.train_seconds / 60:.1f} min; "
                f"best valid NDCG@10 {rec.best_valid_ndcg} at step {rec.best_step}"
            )
        return self

    def _replan(
        self,
        horizon: list[int],
        planned: int,
        step: int,
        elapsed: float,
        eval_s: float,
        n_evals: int,
        budget_s: float,
        validating: bool,
    ) -> None:
        """Set the LR horizon to the steps that still fit in the budget, so the schedule anneals to ~0
        instead of being cut mid-decay (or ending early with budget left). Validation time is measured
        separately and budgeted per future evaluation."""
        sec_per_step = max(1e-9, elapsed - eval_s) / step
        per_eval = eval_s / n_evals if (validating and n_evals) else 0.0
        cost = sec_per_step + per_eval / self.config.eval_every_steps
        remaining = max(0.0, budget_s - elapsed - per_eval) * 0.97
        horizon[0] = int(min(planned, max(step + 1, step + remaining / cost)))

    def _evaluate(
        self,
        pools: list[tuple[list[str], list[str], np.ndarray]],
        rec: _TrainRecord,
        step: int,
        t0: float,
        bad_evals: int,
        best_state: dict[str, Any] | None,
    ) -> tuple[int, dict[str, Any] | None]:
        self.model_.eval()
        value = self._eval_pools(pools)
        self.model_.train()
        rec.history.append({"step": step, "valid_ndcg": value, "elapsed": time.perf_counter() - t0})
        if rec.best_valid_ndcg is None or value > rec.best_valid_ndcg + self.config.min_delta:
            rec.best_valid_ndcg, rec.best_step = value, step
            best_state = copy.deepcopy(self.model_.state_dict())
            bad_evals = 0
        else:
            bad_evals += 1
        if self.config.progress:
            _log(f"step {step}: valid NDCG@10 {value:.4f} (best {rec.best_valid_ndcg:.4f} @ {rec.best_step})")
        return bad_evals, best_state

    def _valid_pools(
        self, valid: Sequence[GradedPair], rng: random.Random
    ) -> list[tuple[list[str], list[str], np.ndarray]]:
        pools = []
        for q, ps in group_by_query(list(valid)).items():
            labels = np.array([p.label for p in ps], dtype=np.float64)
            if len(ps) >= 2 and labels.max() > 0:
                pools.append(([q] * len(ps), [p.doc for p in ps], labels))
        if len(pools) > self.config.max_valid_queries:
            pools = rng.sample(pools, self.config.max_valid_queries)
        return pools

    def _eval_pools(self, pools: list[tuple[list[str], list[str], np.ndarray]]) -> float:
        qs = [q for p in pools for q in p[0]]
        ds = [d for p in pools for d in p[1]]
        scores = self.score_pairs(qs, ds, backend="torch")
        out, i = [], 0
        for _, docs, labels in pools:
            out.append((scores[i : i + len(docs)], labels))
            i += len(docs)
        return pool_ndcg(out)

    def _pair_lengths(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Word pieces of each (query, doc) pair as `_encode` will feed it: both texts plus the
        three special tokens, truncated to ``max_length``. Each distinct text is tokenised once per
        model (later epochs reuse the counts; the cache goes with the tokenizer in `_init_model`)."""
        n = self._text_lengths
        texts = sorted({t for pair in pairs for t in pair} - n.keys())
        if texts:
            ids = self.tokenizer_(
                texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False
            )["input_ids"]
            n.update(zip(texts, (len(x) for x in ids), strict=True))
        limit = self.config.max_length
        return {(q, d): min(limit, n[q] + n[d] + 3) for q, d in pairs}

    def _length_sorted(self, units: list[list[tuple[str, str, float]]], per_step: int, rng: random.Random):
        """Batches of ``per_step`` units (each a list of rows) with little padding, in random order.

        The units are already shuffled; each chunk of ``length_sorted_chunk`` batches' worth is
        sorted by its units' longest pair and cut into batches, and the batches are shuffled, so an
        epoch still sees every unit once and batch order carries no length trend ("sortish"
        batching, as fairseq and Hugging Face's ``group_by_length`` do it).
        """
        chunk = self.config.length_sorted_chunk * per_step
        if chunk <= 0:
            return [units[s : s + per_step] for s in range(0, len(units), per_step)]
        lengths = self._pair_lengths([(r[0], r[1]) for u in units for r in u])
        width = [max(lengths[(r[0], r[1])] for r in u) for u in units]
        batches = []
        for c in range(0, len(units), chunk):
            idx = sorted(range(c, min(c + chunk, len(units))), key=width.__getitem__)
            batches += [[units[i] for i in idx[s : s + per_step]] for s in range(0, len(idx), per_step)]
        rng.shuffle(batches)
        return batches

    def _pointwise_batches(self, train: list[GradedPair], rng: random.Random, per_step: int):
        units = [[(p.query, p.doc, p.label)] for p in train]
        rng.shuffle(units)
        for batch in self._length_sorted(units, per_step, rng):
            yield [row for unit in batch for row in unit], None

    def _listwise_batches(
        self, groups: dict[str, list[GradedPair]], doc_pool: list[str], rng: random.Random, per_step: int
    ):
        """Yield (pairs, group_size): per positive, the positive first then k negatives of its query.

        Negatives come from the query's own pairs whose label is at least ``label_margin`` lower (judged
        low-relevance items, mined hard and random negatives); when a query has too few, random
        catalog texts fill the group (label 0). A group's negatives are drawn before batching, so
        batches can be formed from groups of similar length.
        """
        cfg = self.config
        k = cfg.group_size - 1
        units: list[tuple[GradedPair, list[GradedPair]]] = []
        for ps in groups.values():
            for pos in ps:
                if pos.label >= cfg.positive_threshold:
                    units.append((pos, [p for p in ps if p.label <= pos.label - cfg.label_margin]))
        rng.shuffle(units)
        rows_per_unit: list[list[tuple[str, str, float]]] = []
        for pos, negs in units:
            chosen = rng.sample(negs, min(k, len(negs)))
            rows = [(pos.query, pos.doc, pos.label)]
            rows.extend((n.query, n.doc, n.label) for n in chosen)
            own = {pos.doc} | {p.doc for p in negs}
            missing = k - len(chosen)
            while missing > 0:
                d = doc_pool[rng.randrange(len(doc_pool))]
                if d in own and len(own) < len(doc_pool):
                    continue  # never use one of the query's own documents as a random filler
                rows.append((pos.query, d, 0.0))
                missing -= 1
            rows_per_unit.append(rows)
        for batch in self._length_sorted(rows_per_unit, per_step, rng):
            yield [row for unit in batch for row in unit], cfg.group_size

    def _step_loss(self, batch: tuple[list[tuple[str, str, float]], int | None]):
        import torch
        import torch.nn.functional as F

        rows, group = batch
        feats = self._collate(self._encode([r[0] for r in rows], [r[1] for r in rows]))
        inputs = {k: torch.from_numpy(v) for k, v in feats.items()}
        with autocast(self.config.precision):
            logits = self.model_(**inputs).logits.squeeze(-1).float()
        labels = torch.tensor([r[2] for r in rows], dtype=torch.float32)
        if group is None:
            return F.binary_cross_entropy_with_logits(logits, labels)
        grouped = logits.view(-1, group)
        # the positive sits at column 0 of every group
        loss = F.cross_entropy(grouped, torch.zeros(grouped.shape[0], dtype=torch.long))
        if self.config.bce_weight > 0:
            loss = loss + self.config.bce_weight * F.binary_cross_entropy_with_logits(logits, labels)
        return loss

    # ------------------------------------------------------------------ scoring
    def scoring_backend(self, backend: Backend | None = None) -> Literal["torch", "onnx-int8"]:
        """The concrete backend for ``backend`` (default: the configured one); ``auto`` resolves to
        torch where bf16 is fast on this CPU and to int8 ONNX elsewhere."""
        chosen = backend or self.config.backend
        if chosen == "auto":
            return "torch" if resolve_precision(self.config.precision) == "bf16" else "onnx-int8"
        return chosen

    def score(self, query: str, docs: Sequence[str], *, backend: Backend | None = None) -> np.ndarray:
        """Relevance logits (len(docs),) float32 for one query's candidates; higher = more relevant."""
        return self.score_pairs([query] * len(docs), docs, backend=backend)

    def score_pairs(
        self,
        queries: Sequence[str],
        docs: Sequence[str],
        *,
        backend: Backend | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Logits (n,) float32 for n (query, doc) pairs, batched by length to minimise padding."""
        self._check_fitted()
        if len(queries) != len(docs):
            raise ValueError("queries and docs must have the same length")
        if len(docs) == 0:
            return np.zeros(0, dtype=np.float32)
        backend = self.scoring_backend(backend)
        encoded = self._encode(queries, docs)
        order = np.argsort([len(ids) for ids, _ in encoded], kind="stable")
        out = np.empty(len(encoded), dtype=np.float32)
        bs = self.config.score_batch_size
        t0 = time.perf_counter()
        run = self._torch_logits if backend == "torch" else self._onnx_logits
        for b, s in enumerate(range(0, len(order), bs)):
            idx = order[s : s + bs]
            out[idx] = run(self._collate([encoded[i] for i in idx], bucket_rows=True))[: len(idx)]
            if progress and (b + 1) % 200 == 0:
                rate = (b + 1) * bs / (time.perf_counter() - t0)
                left = (len(order) - (b + 1) * bs) / rate
                _log(f"scored {(b + 1) * bs}/{len(order)} pairs, {rate:.0f} pairs/s, ETA {left:.0f}s")
        return out

    def _torch_logits(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode(), autocast(self.config.precision):
            inputs = {k: torch.from_numpy(v) for k, v in feats.items()}
            return self.model_(**inputs).logits.squeeze(-1).float().numpy()

    def _onnx_logits(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        if getattr(self, "_onnx_session", None) is None:
            path = getattr(self, "_onnx_path", None)
            if path is None or not Path(path).exists():
                # no exported file yet: export next to nothing persistent (a temp dir for this process)
                tmp = Path(tempfile.mkdtemp(prefix="shoploop-ce-onnx-"))
                path = self.export_onnx(tmp)
            self._onnx_session = _ort_session(Path(path), self.config.num_threads)
        return self._onnx_session.run(["logits"], feats)[0].reshape(-1).astype(np.float32)

    def export_onnx(self, directory: Path, *, quantize: bool = True) -> Path:
        """Export ``directory/model.onnx`` and (default) int8 ``model.int8.onnx``; returns the one in use."""

        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        fp32 = directory / _ONNX_FP32
        # padded on purpose (see export_onnx)
        dummy = self._collate(
            self._encode(
                ["a query", "another much longer query"], ["a title", "a much longer product title here"]
            )
        )
        export_onnx(tensor_output(self.model_.eval(), "logits"), dummy, fp32, "logits", {0: "batch"})
        # export restores the wrapper's training flag on every submodule: make sure we serve in eval mode
        self.model_.eval()
        target = fp32
        if quantize:
            target = directory / _ONNX_INT8
            quantize_int8(fp32, target)
        self._onnx_path = target
        self._onnx_session = None
        return target

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path, *, export_onnx_int8: bool = False) -> None:
        """Write config + training record (JSON), safetensors weights and tokenizer, and the int8 ONNX
        model when one was exported, ``export_onnx_int8`` is set or the configured backend needs it."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model_.save_pretrained(directory / _MODEL_DIR, safe_serialization=True)
        self.tokenizer_.save_pretrained(directory / _MODEL_DIR)
        rec = getattr(self, "record_", _TrainRecord())
        meta = {"config": asdict(self.config), "record": asdict(rec), "format": 1}
        (directory / _CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        current = getattr(self, "_onnx_path", None)
        if current is not None and Path(current).name == _ONNX_INT8 and Path(current).exists():
            if Path(current).resolve() != (directory / _ONNX_INT8).resolve():
                shutil.copyfile(current, directory / _ONNX_INT8)
            self._onnx_path = directory / _ONNX_INT8
        elif export_onnx_int8 or self.scoring_backend() == "onnx-int8":
            self.export_onnx(directory)

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Inverse of `save`; uses ``model.int8.onnx`` for the onnx-int8 backend when present."""
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        set_offline()
        directory = Path(directory)
        meta = json.loads((directory / _CONFIG_FILE).read_text())
        self = cls(CrossEncoderConfig(**meta["config"]))
        torch.set_num_threads(self.config.num_threads)
        self.model_ = AutoModelForSequenceClassification.from_pretrained(str(directory / _MODEL_DIR)).eval()
        self._fp32_head()
        self.tokenizer_ = AutoTokenizer.from_pretrained(str(directory / _MODEL_DIR))
        self.record_ = _TrainRecord(**meta.get("record", {}))
        self._onnx_session = None
        if (directory / _ONNX_INT8).exists():
            self._onnx_path = directory / _ONNX_INT8
        return self


def blend_with_first_stage(first: np.ndarray, cross: np.ndarray, weight: float) -> np.ndarray:
    """Min-max-normalised first-stage and cross-encoder scores mixed with the cross-encoder's share
    ``weight`` (higher = better), so the re-ranker refines retrieval rather than overruling it."""

    def minmax(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        span = float(x.max() - x.min()) if x.size else 0.0
        return (x - x.min()) / span if span > 0 else np.zeros_like(x)

    return (1 - weight) * minmax(first) + weight * minmax(cross)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _ort_session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # no busy-waiting between ops: on cores shared with other work, spinning threads steal the CPU the
    # next op needs (the same effect as OpenMP's active wait policy for torch)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
