"""Training loop for the SASRec-style model: full-softmax cross-entropy, early stopping.

Why full softmax: with catalogs up to ~50k items, scoring every item at every position is
affordable on CPU and avoids the overconfidence that sampled negatives cause in SASRec
(Klenitskiy & Vasilev, RecSys 2023; Petrov & Macdonald, gSASRec, RecSys 2023).

The loop knows nothing about SASRec's internals beyond two methods of the module:
`hidden(seq) -> (B, L, d)`, `item_table() -> (n_items+1, d)` and `logits(h, table)`; that keeps this file
importable from `sasrec.py` without a cycle.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    label_smoothing: float = 0.0
    patience: int = 10  # epochs without a better validation NDCG@10 before stopping
    budget_minutes: float = 15.0
    eval_batch_size: int = 512
    num_threads: int = 2
    seed: int = 0
    grad_clip: float = 1.0
    # Learning-rate decay on a validation plateau: after `lr_plateau_patience` epochs without a
    # better validation NDCG@10 the rate is multiplied by `lr_plateau_factor` and training resumes
    # from the best checkpoint (1.0 = constant rate). Needs validation data.
    lr_plateau_factor: float = 1.0
    lr_plateau_patience: int = 3
    # Long histories are cut into windows of max_len+1 from the end; windows beyond the
    # newest `max_windows` are dropped (1 = classic SASRec: newest window only).
    max_windows: int = 1
    # Each position also learns the items 2..future_targets steps ahead (weight
    # future_decay ** (k - 1) for the item k steps ahead), not only the next one: on sparse
    # histories the order of the next few items is noisy, and every later item of the same
    # shopper is evidence of what goes with the history so far (PinnerFormer's dense all-action
    # loss, Pancha et al., KDD 2022). 1 = classic next-item training.
    future_targets: int = 1
    future_decay: float = 0.5
    # Validate, keep and return an exponential moving average of the weights (decay per
    # optimiser step; 0 = off, the raw weights). With ~50 steps an epoch on ml-1m, the raw
    # weights' validation NDCG wanders by ~0.01 between epochs; an average over the last few
    # epochs sits nearer the middle of that wandering (Polyak averaging).
    ema_decay: float = 0.0


def pad_left(seqs: Sequence[Sequence[int]], width: int | None = None) -> torch.Tensor:
    """(B, L) long tensor, each row right-aligned, zeros on the left. L = longest row (>= 1)."""
    width = max(width or 0, max((len(s) for s in seqs), default=0), 1)
    out = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        if len(s):
            out[r, width - len(s) :] = torch.as_tensor(list(s), dtype=torch.long)
    return out


def targets_ahead(windows: Sequence[Sequence[int]], k: int, width: int) -> torch.Tensor:
    """(B, width): for the inputs w[:-1] of each window, left-padded to `width`, the item k steps
    ahead of each input position (0 where the window ends first). k = 1 is the next item."""
    return pad_left([[*w[k:], *([0] * (k - 1))][: max(len(w) - 1, 0)] for w in windows], width=width)


def future_cross_entropy(
    logits: torch.Tensor, targets: Sequence[torch.Tensor], decay: float, label_smoothing: float
) -> tuple[torch.Tensor, float]:
    """Mean cross-entropy of (N, n) scores against targets[k-1] (N,) = item k steps ahead
    (1-based item ids, 0 = none), the k-th weighted decay ** (k - 1). One log-softmax serves
    every k. Label smoothing as torch's: (1 - eps) * nll + eps * mean over items of -log p.
    Returns (loss, total weight)."""
    logp = torch.log_softmax(logits, dim=1)  # (N, n)
    smooth = -logp.mean(1) if label_smoothing > 0 else None  # (N,)
    total = logits.new_zeros(())
    weight = 0.0
    for k, target in enumerate(targets, start=1):
        has = target > 0  # (N,)
        if not has.any():
            continue
        nll = -logp.gather(1, (target - 1).clamp(min=0)[:, None])[:, 0]  # (N,)
        if smooth is not None:
            nll = (1.0 - label_smoothing) * nll + label_smoothing * smooth
        w = decay ** (k - 1)
        total = total + w * nll[has].sum()
        weight += w * float(has.sum())
    return total / max(weight, 1e-12), weight


def training_windows(sequences: Sequence[Sequence[int]], max_len: int, max_windows: int) -> list[list[int]]:
    """Cut each sequence into windows of max_len+1 items (input = w[:-1], targets = w[1:])."""
    out: list[list[int]] = []
    span = max_len + 1
    for s in sequences:
        s = list(s)
        end, taken = len(s), 0
        while end >= 2 and taken < max_windows:
            out.append(s[max(0, end - span) : end])
            taken += 1
            end -= max_len  # windows overlap by one item so every transition is a target once
    return out


def length_buckets(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of similar length, in random order.

    Amazon-style histories are mostly short (median ~6) with a few of 50: random batches pad
    everything to ~50 and waste most of the transformer's work. Sorting by length with random
    tie-breaks, cutting into batches and shuffling the batches keeps SGD noise while padding little.
    """
    order = np.lexsort((rng.random(len(lengths)), lengths))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


@torch.no_grad()
def ndcg10_full_ranking(
    model: nn.Module,
    histories: Sequence[Sequence[int]],
    targets: Sequence[int],
    max_len: int,
    batch_size: int,
) -> float:
    """Mean NDCG@10 of the target over ALL items, history items excluded (the benchmark protocol)."""
    model.eval()
    table = model.item_table()
    total = 0.0
    for start in range(0, len(histories), batch_size):
        full = [list(h) for h in histories[start : start + batch_size]]
        tgt = torch.as_tensor(list(targets[start : start + batch_size]), dtype=torch.long)
        h = model.hidden(pad_left([items[-max_len:] for items in full]))[:, -1, :]  # (B, d)
        scores = model.logits(h, table)  # (B, n+1)
        scores[:, 0] = -torch.inf
        for r, items in enumerate(full):
            # the whole history excluded, not only the window the model reads, except the target
            # itself (as evaluation.metrics.rank_of_target)
            scores[r, [i for i in items if i != tgt[r].item()] or [0]] = -torch.inf
        t_score = scores.gather(1, tgt[:, None])
        rank = (scores >= t_score).sum(1)  # pessimistic ties, like rank_of_target
        total += torch.where(rank <= 10, 1.0 / torch.log2(rank.float() + 1.0), 0.0).sum().item()
    return total / max(len(histories), 1)


def train_sasrec(
    model: nn.Module,
    sequences: Sequence[Sequence[int]],
    valid: tuple[Sequence[Sequence[int]], Sequence[int]] | None,
    config: TrainConfig,
    max_len: int,
    *,
    on_epoch: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train `model` in place; the best validation checkpoint is restored at the end.

    Returns the per-epoch history (loss, valid_ndcg10, seconds). Without `valid` the model
    trains for the full epoch/time budget and the last state is kept.
    """
    if valid is not None and len(valid[1]) == 0:
        valid = None  # nothing to select on: train for the full epoch/time budget
    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    windows = training_windows(sequences, max_len, config.max_windows)
    if not windows:
        raise ValueError("no training sequence has two or more items")
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim >= 2 else no_decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.98),
    )
    ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
        if config.ema_decay > 0
        else None
    )
    scored = model if ema is None else ema.module  # the weights that are validated and kept
    budget_s = config.budget_minutes * 60.0
    start_time = time.monotonic()
    best, best_state, bad_epochs, since_decay = -math.inf, None, 0, 0
    history: list[dict] = []
    lengths = np.asarray([len(w) for w in windows])
    for epoch in range(1, config.epochs + 1):
        model.train()
        t_epoch = time.monotonic()
        batches = length_buckets(lengths, config.batch_size, rng)
        total_loss, total_n = 0.0, 0
        for members in batches:
            batch = [windows[i] for i in members]
            seq = pad_left([w[:-1] for w in batch])  # (B, L) inputs
            tgt = targets_ahead(batch, 1, seq.shape[1])  # (B, L) next items
            hid = model.hidden(seq)  # (B, L, d)
            keep = tgt > 0
            h = hid[keep]  # (N, d) positions that have a next item
            table = model.item_table()  # (n+1, d), rebuilt each step: text adaptor is trained
            logits = model.logits(h, table[1:])  # (N, n) padding row excluded from the softmax
            loss, weight = future_cross_entropy(
                logits,
                [
                    tgt[keep],
                    *(
                        targets_ahead(batch, k, seq.shape[1])[keep]
                        for k in range(2, config.future_targets + 1)
                    ),
                ],
                config.future_decay,
                config.label_smoothing,
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            total_loss += loss.item() * weight
            total_n += weight
            if time.monotonic() - start_time > budget_s:
                break
        elapsed = time.monotonic() - start_time
        row = {"epoch": epoch, "loss": total_loss / max(total_n, 1), "seconds": time.monotonic() - t_epoch}
        if valid is not None:
            score = ndcg10_full_ranking(scored, valid[0], valid[1], max_len, config.eval_batch_size)
            row["valid_ndcg10"] = score
            if score > best:
                best, bad_epochs, since_decay = score, 0, 0
                best_state = copy.deepcopy(scored.state_dict())
                row["best"] = True
            else:
                bad_epochs += 1
                since_decay += 1
                if (
                    config.lr_plateau_factor < 1.0
                    and since_decay >= config.lr_plateau_patience
                    and best_state is not None
                ):
                    # a lower rate from the best point, rather than from wherever the noisy
                    # steps have wandered since
                    model.load_state_dict(best_state)
                    if ema is not None:
                        ema.module.load_state_dict(best_state)
                    for group in opt.param_groups:
                        group["lr"] *= config.lr_plateau_factor
                    since_decay = 0
                    row["lr"] = opt.param_groups[0]["lr"]
        history.append(row)
        per_epoch = elapsed / epoch
        eta = min((config.epochs - epoch) * per_epoch, max(budget_s - elapsed, 0.0))
        log.info(
            "epoch %d loss %.4f valid ndcg@10 %s | %.1f s/epoch, %.0f windows/s | "
            "elapsed %.1f min, ETA <= %.1f min",
            epoch,
            row["loss"],
            f"{row['valid_ndcg10']:.4f}" if "valid_ndcg10" in row else "-",
            row["seconds"],
            len(windows) / max(row["seconds"], 1e-9),
            elapsed / 60,
            eta / 60,
        )
        if on_epoch is not None:
            on_epoch(row)
        if bad_epochs >= config.patience or elapsed > budget_s:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    elif ema is not None:
        model.load_state_dict(ema.module.state_dict())
    model.eval()
    return history
