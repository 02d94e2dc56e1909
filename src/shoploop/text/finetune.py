"""Fine-tune the MiniLM bi-encoder on (query, relevant product text) pairs with an in-batch contrastive loss.

Pairs come from judgments (relevance >= 2.5) or from clicks/purchases. The loss is
sentence-transformers' `MultipleNegativesRankingLoss` (InfoNCE over cosine similarities, scale 20):
each query must pick its own product out of the batch, so every other product in the batch is a
free negative (Henderson et al. 2017; the standard recipe behind all-MiniLM-L6-v2 itself). Optional
mined hard negatives (e.g. BM25 hits nobody clicked) are added as one extra column.

We drive the library's loss with a small explicit loop instead of `SentenceTransformerTrainer`:
the trainer needs `datasets` + `accelerate` (not dependencies of this project) and offers nothing
we need on CPU, while the loop gives us a wall-clock budget, a no-duplicates batch sampler (a query
or product appearing twice in one batch would be a false in-batch negative) and early stopping on
validation Recall@k over a candidate corpus.

The output directory is a regular sentence-transformers model directory, usable as
``EncoderConfig(model_path=...)``, plus ``finetune_record.json`` with the training history.
"""

from __future__ import annotations

import copy
import json
import math
import random
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from shoploop.text.encoder import packaged_minilm_path, set_offline
from shoploop.text.precision import Precision, autocast, resolve_precision

__all__ = ["BiEncoderFinetuneConfig", "finetune_bi_encoder", "recall_at_k_over_corpus"]


@dataclass(frozen=True)
class BiEncoderFinetuneConfig:
    model_path: str | None = None  # None = packaged all-MiniLM-L6-v2
    batch_size: int = 64
    max_seq_length: int = 48
    epochs: int = 2
    lr: float = 3e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    scale: float = 20.0  # MNRL temperature^-1 (the value all-MiniLM was trained with)
    valid_frac: float = 0.1  # share of *queries* held out for early stopping
    max_valid_queries: int = 400
    valid_corpus_size: int = 5000  # distractors drawn from the corpus for validation retrieval
    recall_k: int = 20
    eval_every_steps: int = 200
    patience: int = 3
    min_delta: float = 1e-4
    seed: int = 0
    time_budget_minutes: float = 15.0
    num_threads: int = 2
    precision: Precision = "auto"  # training forward passes: fp32, bf16 autocast, or auto (bf16 if fast)
    progress: bool = True
    log_every_steps: int = 25


@dataclass
class _Record:
    history: list[dict[str, float]] = field(default_factory=list)
    best_valid_recall: float | None = None
    best_step: int = 0
    steps: int = 0
    train_seconds: float = 0.0
    stopped_reason: str = ""
    precision: str = ""  # what the training forward passes ran in ("fp32" or "bf16")
    n_train_pairs: int = 0
    n_valid_queries: int = 0


def _log(msg: str) -> None:
    print(f"[bi-encoder] {msg}", file=sys.stderr, flush=True)


def recall_at_k_over_corpus(
    query_emb: np.ndarray, corpus_emb: np.ndarray, relevant: Sequence[set[int]], k: int
) -> float:
    """Mean Recall@k. query_emb (n, d) and corpus_emb (m, d) L2-normalised; relevant[i] = corpus rows."""
    sims = query_emb @ corpus_emb.T  # (n, m)
    k = min(k, corpus_emb.shape[0])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    vals = [
        len(rel.intersection(row.tolist())) / len(rel) for row, rel in zip(top, relevant, strict=True) if rel
    ]
    return float(np.mean(vals)) if vals else 0.0


def _no_duplicate_batches(
    rows: list[tuple[str, str]], batch_size: int, rng: random.Random
) -> list[list[tuple[str, str]]]:
    """Shuffle, then fill batches so that no query and no product text repeats inside a batch.

    A repeated product (or a query with two positives) in one batch would be scored as its own
    negative, a contradictory target for the contrastive loss.
    """
    pending = rows[:]
    rng.shuffle(pending)
    batches = []
    while pending:
        batch, seen, rest = [], set(), []
        for r in pending:
            if len(batch) < batch_size and r[0] not in seen and r[1] not in seen:
                batch.append(r)
                seen.update(r)
            else:
                rest.append(r)
        batches.append(batch)
        pending = rest
    # the tail batches of leftovers can be tiny and mostly duplicates of each other; drop singleton batches
    return [b for b in batches if len(b) > 1]


def finetune_bi_encoder(
    pairs: Sequence[tuple[str, str]],
    out_dir: Path,
    config: BiEncoderFinetuneConfig = BiEncoderFinetuneConfig(),
    *,
    corpus: Sequence[str] | None = None,
    hard_negatives: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Fine-tune on (query, positive text) pairs; returns ``out_dir`` (a sentence-transformers model dir).

    Args:
        pairs: (query, relevant product text); several positives per query are fine.
        out_dir: where the best checkpoint (by validation Recall@k) is written.
        corpus: product texts used as validation distractors (default: the pairs' own texts).
        hard_negatives: query -> texts that are NOT relevant; one is sampled per row per step and added
            as a third column (rows whose query has none get a random corpus text).
    """
    set_offline()
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    cfg = config
    if len(pairs) < 2:
        raise ValueError("finetune_bi_encoder needs at least 2 pairs")
    out_dir = Path(out_dir)
    torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)

    # query-disjoint validation split, so early stopping measures generalisation to new queries
    queries = sorted({q for q, _ in pairs})
    rng.shuffle(queries)
    n_valid = min(cfg.max_valid_queries, round(cfg.valid_frac * len(queries)))
    if len(queries) - n_valid < 1:
        n_valid = 0
    valid_q = set(queries[:n_valid])
    train_rows = [(q, d) for q, d in pairs if q not in valid_q]
    valid_rows = [(q, d) for q, d in pairs if q in valid_q]

    model = SentenceTransformer(cfg.model_path or packaged_minilm_path(), device="cpu")
    model.max_seq_length = cfg.max_seq_length
    loss_fn = MultipleNegativesRankingLoss(model, scale=cfg.scale)

    # validation corpus: every validation positive + seeded distractors
    valid_eval = None
    if valid_rows:
        pool = sorted(set(corpus) if corpus is not None else {d for _, d in pairs})
        pos_docs = sorted({d for _, d in valid_rows})
        pos_set = set(pos_docs)
        others = [d for d in pool if d not in pos_set]
        docs = pos_docs + rng.sample(others, min(cfg.valid_corpus_size, len(others)))
        row_of = {d: i for i, d in enumerate(docs)}
        vq = sorted(valid_q)
        rel = {q: set() for q in vq}
        for q, d in valid_rows:
            rel[q].add(row_of[d])
        valid_eval = (vq, docs, [rel[q] for q in vq])
    random_pool = sorted(set(corpus) if corpus is not None else {d for _, d in pairs})

    def evaluate() -> float:
        assert valid_eval is not None
        vq, docs, rel = valid_eval
        model.eval()
        with torch.inference_mode():
            qe = model.encode(vq, batch_size=128, normalize_embeddings=True, convert_to_numpy=True)
            de = model.encode(docs, batch_size=128, normalize_embeddings=True, convert_to_numpy=True)
        model.train()
        return recall_at_k_over_corpus(qe, de, rel, cfg.recall_k)

    steps_per_epoch = max(1, math.ceil(len(train_rows) / cfg.batch_size))
    planned = steps_per_epoch * cfg.epochs
    horizon = [planned]

    def lr_factor(step: int) -> float:
        # warm-up is a share of the *current* horizon: on a slow machine the budget may allow only a
        # few hundred of the planned steps, and a warm-up sized for the full plan would never finish
        warmup = max(1, int(cfg.warmup_ratio * horizon[0]))
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (horizon[0] - step) / max(1, horizon[0] - warmup))

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    rec = _Record(n_train_pairs=len(train_rows), n_valid_queries=len(valid_q))
    budget_s = cfg.time_budget_minutes * 60.0
    t0 = time.perf_counter()
    best_state = None
    eval_s, n_evals = 0.0, 0  # validation time, kept out of the step-rate estimate
    if valid_eval is not None:
        r0 = evaluate()
        eval_s, n_evals = time.perf_counter() - t0, 1
        rec.best_valid_recall, best_state = r0, copy.deepcopy(model.state_dict())
        rec.history.append({"step": 0, "valid_recall": r0, "elapsed": time.perf_counter() - t0})
        if cfg.progress:
            _log(f"valid Recall@{cfg.recall_k} before training {r0:.4f} ({len(valid_q)} queries)")
    step, bad, stop, loss_acc, loss_n = 0, 0, "", 0.0, 0
    model.train()
    for epoch in range(cfg.epochs):
        for batch in _no_duplicate_batches(train_rows, cfg.batch_size, rng):
            cols = [[q for q, _ in batch], [d for _, d in batch]]
            if hard_negatives is not None:
                negs = []
                for q, _ in batch:
                    cand = hard_negatives.get(q) or ()
                    negs.append(
                        rng.choice(list(cand)) if cand else random_pool[rng.randrange(len(random_pool))]
                    )
                cols.append(negs)
            features = [model.tokenize(c) for c in cols]
            with autocast(cfg.precision):
                loss = loss_fn(features, None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            sched.step()
            step += 1
            loss_acc += float(loss.detach())
            loss_n += 1
            elapsed = time.perf_counter() - t0
            if step in (5, 20) or step % cfg.log_every_steps == 0:
                # plan from the training-only step rate, reserving time for the validations still to come
                sec_per_step = max(1e-9, elapsed - eval_s) / step
                per_eval = eval_s / n_evals if n_evals else 0.0
                cost = sec_per_step + per_eval / cfg.eval_every_steps
                left = max(0.0, budget_s - elapsed - per_eval) * 0.97
                horizon[0] = int(min(planned, max(step + 1, step + left / cost)))
            if step % cfg.log_every_steps == 0:
                rec.history.append({"step": step, "train_loss": loss_acc / loss_n, "elapsed": elapsed})
                if cfg.progress:
                    rate = step / elapsed
                    target = min(horizon[0], planned)
                    _log(
                        f"epoch {epoch + 1} step {step}/{target} loss {loss_acc / loss_n:.4f} "
                        f"{rate * cfg.batch_size:.0f} pairs/s ETA {(target - step) / rate / 60:.1f} min"
                    )
                loss_acc, loss_n = 0.0, 0
            if valid_eval is not None and step % cfg.eval_every_steps == 0:
                te = time.perf_counter()
                r = evaluate()
                eval_s, n_evals = eval_s + time.perf_counter() - te, n_evals + 1
                rec.history.append({"step": step, "valid_recall": r, "elapsed": time.perf_counter() - t0})
                if r > (rec.best_valid_recall or 0.0) + cfg.min_delta:
                    rec.best_valid_recall, rec.best_step, bad = r, step, 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    bad += 1
                if cfg.progress:
                    _log(
                        f"step {step}: valid Recall@{cfg.recall_k} {r:.4f} (best {rec.best_valid_recall:.4f})"
                    )
                if bad >= cfg.patience:
                    stop = "early_stopping"
            if not stop and time.perf_counter() - t0 >= budget_s:
                stop = "time_budget"
            if not stop and step >= horizon[0]:
                stop = "schedule_end"
            if stop:
                break
        if stop:
            break
    stop = stop or "epochs_done"
    if valid_eval is not None and stop != "early_stopping" and rec.history[-1].get("step") != step:
        r = evaluate()
        rec.history.append({"step": step, "valid_recall": r, "elapsed": time.perf_counter() - t0})
        if r > (rec.best_valid_recall or 0.0) + cfg.min_delta:
            rec.best_valid_recall, rec.best_step = r, step
            best_state = copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    rec.steps, rec.stopped_reason, rec.train_seconds = step, stop, time.perf_counter() - t0
    rec.precision = resolve_precision(cfg.precision)
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir), safe_serialization=True)
    (out_dir / "finetune_record.json").write_text(
        json.dumps({"config": asdict(cfg), "record": asdict(rec)}, indent=2)
    )
    if cfg.progress:
        _log(
            f"stopped ({stop}) after {step} steps, {rec.train_seconds / 60:.1f} min; best valid "
            f"Recall@{cfg.recall_k} {rec.best_valid_recall} at step {rec.best_step}; saved {out_dir}"
        )
    return out_dir
