"""A tiny synthetic next-item dataset with planted structure, shared by the recommend tests."""

from __future__ import annotations

import numpy as np
import pytest

N_ITEMS = 40


def chain_sequences(n_users: int = 300, seed: int = 0) -> list[list[int]]:
    """Item i is followed by i+1 (wrapping at N_ITEMS); low items start chains more often,
    so popularity is skewed too and even the popularity baseline has something to learn."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_users):
        start = int(min(rng.geometric(0.08), N_ITEMS))
        length = int(rng.integers(4, 12))
        out.append([((start - 1 + t) % N_ITEMS) + 1 for t in range(length)])
    return out


def text_embeddings(seed: int = 0) -> np.ndarray:
    """(N_ITEMS+1, 384): neighbouring items have similar "text" (a smooth random walk)."""
    rng = np.random.default_rng(seed)
    steps = rng.standard_normal((N_ITEMS, 384)).astype(np.float32)
    walk = np.cumsum(steps, axis=0)
    walk /= np.linalg.norm(walk, axis=1, keepdims=True)
    return np.vstack([np.zeros((1, 384), np.float32), walk])


def item_texts() -> list[str]:
    """N_ITEMS+1 texts (entry 0 padding): runs of four neighbouring items share a "range" word,
    and each item has a word of its own that no other item uses."""
    names = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    return ["", *(f"widget {names[(i - 1) // 4]}range uniq{i}x" for i in range(1, N_ITEMS + 1))]


@pytest.fixture(scope="session")
def chain_data() -> dict:
    seqs = chain_sequences()
    train = [s[:-1] for s in seqs]
    return {
        "train": train,
        "test_history": [s[:-1] for s in seqs],
        "test_target": [s[-1] for s in seqs],
        "valid": ([s[:-2] for s in seqs[:100]], [s[-2] for s in seqs[:100]]),
        "emb": text_embeddings(),
        "texts": item_texts(),
        "n_items": N_ITEMS,
    }
