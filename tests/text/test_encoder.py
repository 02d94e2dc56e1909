"""Real MiniLM: loaded once per module; ONNX int8 must agree with torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shoploop.text.encoder import EncoderConfig, TextEncoder, encode_with_cache

TEXTS = [
    "angle bracket",
    "Simpson Strong-Tie 12-Gauge Angle",
    "BEHR Premium Textured DeckOver 1-gal. #SC-141 Tugboat Wood and Concrete Coating",
    "rain shower head",
    "电视机",
]


@pytest.fixture(scope="module")
def torch_encoder() -> TextEncoder:
    return TextEncoder(EncoderConfig(num_threads=2))


@pytest.mark.slow
def test_onnx_int8_agrees_with_torch(torch_encoder):
    onnx = TextEncoder(EncoderConfig(backend="onnx-int8", num_threads=2))
    a, b = torch_encoder.encode(TEXTS), onnx.encode(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
    assert (a * b).sum(axis=1).min() > 0.98


@pytest.mark.slow
def test_encode_is_normalised_and_cached(torch_encoder, tmp_path: Path):
    v = encode_with_cache(torch_encoder, TEXTS, tmp_path, progress=False)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    # Related texts are closer than unrelated ones.
    assert float(v[0] @ v[1]) > float(v[0] @ v[3])
    again = encode_with_cache(torch_encoder, [*TEXTS, "new text"], tmp_path, progress=False)
    assert np.allclose(again[: len(TEXTS)], v)
    q = torch_encoder.encode_query("angle bracket")
    assert np.allclose(q, v[0], atol=1e-5)
    assert torch_encoder.encode_query("angle bracket") is q  # LRU hit
