"""The SASRec training loop: windows, early stopping and learning-rate decay on a plateau."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shoploop.evaluation.sequential_protocol import evaluate_next_item
from shoploop.recommend import sasrec_trainer
from shoploop.recommend.sasrec import SASRec, SASRecConfig, SASRecModel
from shoploop.recommend.sasrec_trainer import TrainConfig, targets_ahead, train_sasrec, training_windows

SEQS = [[1, 2, 3, 4, 5], [2, 3, 4, 5, 6], [3, 4, 5, 6, 7], [4, 5, 6, 7, 8]] * 4


def test_training_windows_cover_every_transition_once() -> None:
    # max_len 3 -> windows of 4 items from the end, overlapping by one item
    assert training_windows([[1, 2, 3, 4, 5, 6, 7]], max_len=3, max_windows=5) == [
        [4, 5, 6, 7],
        [1, 2, 3, 4],
    ]
    assert training_windows([[1, 2, 3, 4, 5, 6, 7]], max_len=3, max_windows=1) == [[4, 5, 6, 7]]
    assert training_windows([[9]], max_len=3, max_windows=1) == []  # nothing to predict


def test_targets_ahead_aligns_with_left_padded_inputs() -> None:
    windows = [[1, 2, 3, 4], [5, 6]]  # inputs [1, 2, 3] and [_, _, 5] at width 3
    assert targets_ahead(windows, 1, 3).tolist() == [[2, 3, 4], [0, 0, 6]]
    assert targets_ahead(windows, 2, 3).tolist() == [[3, 4, 0], [0, 0, 0]]
    assert targets_ahead(windows, 3, 3).tolist() == [[4, 0, 0], [0, 0, 0]]


def test_future_cross_entropy_is_torch_cross_entropy_weighted_per_step() -> None:
    torch.manual_seed(0)
    logits = torch.randn(50, 30)
    nxt = torch.randint(1, 31, (50,))  # 1-based item ids
    later = nxt.flip(0).clone()
    later[::3] = 0  # the window ends before two steps ahead
    ce = torch.nn.CrossEntropyLoss(label_smoothing=0.1, reduction="sum")
    has = later > 0
    expected = (ce(logits, nxt - 1) + 0.5 * ce(logits[has], later[has] - 1)) / (50 + 0.5 * int(has.sum()))
    loss, weight = sasrec_trainer.future_cross_entropy(logits, [nxt, later], 0.5, 0.1)
    assert weight == 50 + 0.5 * int(has.sum())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    plain, _ = sasrec_trainer.future_cross_entropy(logits, [nxt], 0.5, 0.0)
    assert plain.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, nxt - 1).item(), rel=1e-6)


def test_future_targets_learn_what_comes_two_steps_later() -> None:
    """Item 1 is followed by a random item, then always by item 2. Next-item training never
    sees 2 right after 1; with future targets the state after [1] must rank 2 first."""
    rng = np.random.default_rng(0)
    seqs = [[1, int(rng.integers(3, 21)), 2] for _ in range(400)]
    ranks = {}
    for k in (1, 2):
        torch.manual_seed(0)
        cfg = SASRecConfig(max_len=4, hidden=16, n_blocks=1, n_heads=1, dropout=0.0, use_text=False)
        model = SASRecModel(cfg, n_items=20, text_emb=None)
        train_sasrec(model, seqs, None, TrainConfig(epochs=30, lr=0.01, num_threads=1, future_targets=k), 4)
        with torch.no_grad():
            scores = model.logits(model.hidden(torch.tensor([[1]]))[:, -1], model.item_table())[0]
        scores[[0, 1]] = -torch.inf  # padding and the history item
        ranks[k] = int((scores > scores[2]).sum()) + 1
    assert ranks[2] == 1
    assert ranks[1] > 5


def tiny_model() -> SASRecModel:
    torch.manual_seed(0)
    cfg = SASRecConfig(max_len=6, hidden=8, n_blocks=1, n_heads=1, dropout=0.0, use_text=False)
    return SASRecModel(cfg, n_items=8, text_emb=None)


@pytest.fixture
def scripted_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation NDCG 0.5 after epoch 1, then a plateau at 0.4, whatever the model does."""
    scores = iter([0.5] + [0.4] * 50)
    monkeypatch.setattr(sasrec_trainer, "ndcg10_full_ranking", lambda *a, **k: next(scores))


def test_plateau_decay_lowers_the_rate_and_restarts_from_the_best_epoch(scripted_validation: None) -> None:
    model = tiny_model()
    config = TrainConfig(
        epochs=20, lr=0.01, patience=5, lr_plateau_factor=0.5, lr_plateau_patience=2, num_threads=1
    )
    snapshots: list[dict[str, torch.Tensor]] = []
    history = train_sasrec(
        model,
        SEQS,
        ([[1, 2]], [3]),
        config,
        max_len=6,
        on_epoch=lambda row: snapshots.append({k: v.clone() for k, v in model.state_dict().items()}),
    )
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]  # early stop after 5 bad epochs
    assert {h["epoch"]: h["lr"] for h in history if "lr" in h} == {3: 0.005, 5: 0.0025}
    # each decay reloads the best (epoch-1) weights, and the best weights are what is returned
    for epoch in (3, 5):
        for name, value in snapshots[0].items():
            assert torch.equal(snapshots[epoch - 1][name], value), name
    for name, value in model.state_dict().items():
        assert torch.equal(value, snapshots[0][name]), name


def test_constant_rate_by_default(scripted_validation: None) -> None:
    history = train_sasrec(
        tiny_model(), SEQS, ([[1, 2]], [3]), TrainConfig(epochs=8, lr=0.01, patience=3, num_threads=1), 6
    )
    assert len(history) == 4 and not any("lr" in h for h in history)


def test_attention_dropout_defaults_to_dropout_and_can_be_switched_off() -> None:
    def attention_rates(**overrides: float | None) -> list[float]:
        cfg = SASRecConfig(
            max_len=6, hidden=8, n_blocks=2, n_heads=1, dropout=0.3, use_text=False, **overrides
        )
        return [block.attn.dropout for block in SASRecModel(cfg, n_items=8, text_emb=None).blocks]

    assert attention_rates() == [0.3, 0.3]
    assert attention_rates(attention_dropout=0.0) == [0.0, 0.0]
    # residual and embedding dropout keep the shared rate either way
    cfg = SASRecConfig(
        max_len=6, hidden=8, n_blocks=1, n_heads=1, dropout=0.3, attention_dropout=0.0, use_text=False
    )
    model = SASRecModel(cfg, n_items=8, text_emb=None)
    assert model.emb_drop.p == 0.3 and model.blocks[0].drop.p == 0.3


def test_validation_metric_is_the_benchmark_protocol_on_histories_longer_than_the_window(
    chain_data: dict,
) -> None:
    """Early stopping must select on the number the benchmark reports: items the shopper saw
    before the model's window are excluded too, not only the ones it reads."""
    config = SASRecConfig(
        max_len=3,
        hidden=16,
        n_blocks=1,
        n_heads=1,
        dropout=0.0,
        use_text=False,
        train=TrainConfig(epochs=3, num_threads=1),
    )
    model = SASRec(config).fit(chain_data["train"], chain_data["n_items"])
    # every history revisits its first items after the window: [a, b, c, d, e, a+1 ...]
    histories = [h[:6] for h in chain_data["test_history"] if len(h) >= 7]
    targets = [h[0] + 1 if h[0] < chain_data["n_items"] else 1 for h in histories]
    ours = sasrec_trainer.ndcg10_full_ranking(model.module_, histories, targets, max_len=3, batch_size=16)
    benchmark = evaluate_next_item(model, histories, targets, chain_data["n_items"])["ndcg@10"]
    assert ours == pytest.approx(benchmark, abs=1e-6)


def train_one_step_per_epoch(
    epochs: int, ema_decay: float
) -> tuple[SASRecModel, list[dict[str, torch.Tensor]]]:
    """Train without validation, one step an epoch (the batch holds every window); returns the
    model and the raw weights after each step."""
    model = tiny_model()
    raw: list[dict[str, torch.Tensor]] = []
    train_sasrec(
        model,
        SEQS,
        None,
        TrainConfig(epochs=epochs, lr=0.05, batch_size=64, ema_decay=ema_decay, num_threads=1),
        max_len=6,
        on_epoch=lambda row: raw.append({k: v.clone() for k, v in model.state_dict().items()}),
    )
    return model, raw


def test_weight_averaging_returns_the_moving_average_of_the_steps_weights() -> None:
    """One step per epoch (the batch holds every window), so the per-epoch snapshots of the raw
    weights are the per-step weights the average is taken over: ema_1 = w_1, then
    ema_t = d * ema_(t-1) + (1 - d) * w_t."""
    decay = 0.6
    model, raw = train_one_step_per_epoch(epochs=4, ema_decay=decay)
    expected = dict(raw[0])
    for step in raw[1:]:
        expected = {k: decay * expected[k] + (1 - decay) * step[k] for k in expected}
    moved = False
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[name], msg=name)
        moved |= not torch.allclose(value, raw[-1][name])
    assert moved  # the kept weights are the average, not the last step's


def test_without_weight_averaging_the_last_steps_weights_are_kept() -> None:
    model, raw = train_one_step_per_epoch(epochs=3, ema_decay=0.0)
    for name, value in model.state_dict().items():
        assert torch.equal(value, raw[-1][name]), name
