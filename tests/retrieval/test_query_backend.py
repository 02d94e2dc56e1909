"""Which encoder answers queries: a serving choice that must never mix models."""

import pytest

from shoploop.retrieval.config import HybridConfig
from shoploop.text.encoder import EncoderConfig


@pytest.mark.parametrize(
    ("encoder", "query_backend", "expected"),
    [
        (EncoderConfig(), "auto", "onnx-int8"),  # packaged MiniLM: its int8 twin answers queries
        (EncoderConfig(model_path="var/ft-model"), "auto", "torch"),  # fine-tuned: no int8 twin
        (EncoderConfig(backend="onnx-int8"), "auto", "onnx-int8"),
        (EncoderConfig(), None, "torch"),  # None = whatever encodes the products
        (EncoderConfig(), "torch", "torch"),
        (EncoderConfig(), "onnx-int8", "onnx-int8"),
    ],
)
def test_query_backend_resolution(encoder, query_backend, expected):
    config = HybridConfig(encoder=encoder, query_backend=query_backend)
    assert config.resolved_query_backend() == expected
    assert HybridConfig.from_dict(config.to_dict()).resolved_query_backend() == expected
