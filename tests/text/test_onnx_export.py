"""int8 ONNX export of a fine-tuned sentence-transformers directory (tiny model, fast)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from shoploop.retrieval.config import HybridConfig
from shoploop.text.encoder import EncoderConfig, TextEncoder
from shoploop.text.onnx_export import encoder_int8_path, export_encoder_int8
from tests.text.test_finetune import tiny_sentence_transformer

TEXTS = ["cordless drill", "red garden hose 50 ft", "a", "white ceiling fan with light kit and remote"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tiny_sentence_transformer(tmp_path_factory.mktemp("st")))


def test_export_serves_what_the_torch_model_computes(model_dir: Path, tmp_path: Path) -> None:
    exported = tmp_path / "st"
    shutil.copytree(model_dir, exported)
    assert encoder_int8_path(exported) is None
    path = export_encoder_int8(exported)
    assert path == encoder_int8_path(exported) and not list(path.parent.glob("*fp32*"))
    torch_enc = TextEncoder(EncoderConfig(model_path=str(exported), max_length=32, num_threads=1))
    int8_enc = TextEncoder(
        EncoderConfig(model_path=str(exported), backend="onnx-int8", max_length=32, num_threads=1)
    )
    a, b = torch_enc.encode(TEXTS), int8_enc.encode(TEXTS)
    assert a.shape == b.shape
    cosine = (a * b).sum(axis=1)  # both L2-normalised
    assert cosine.min() > 0.97, cosine
    # padding must not leak: a text alone and inside a padded batch encode the same (up to the
    # per-batch activation scale of dynamic int8, ~5e-5 here; leaked padding moves it by far more)
    np.testing.assert_allclose(int8_enc.encode(["a"])[0], b[2], atol=1e-3)


def test_auto_query_backend_uses_an_int8_export_when_the_directory_has_one(
    model_dir: Path, tmp_path: Path
) -> None:
    exported = tmp_path / "st"
    shutil.copytree(model_dir, exported)
    config = HybridConfig(encoder=EncoderConfig(model_path=str(exported)))
    assert config.resolved_query_backend() == "torch"
    export_encoder_int8(exported)
    assert config.resolved_query_backend() == "onnx-int8"
    assert HybridConfig().resolved_query_backend() == "onnx-int8"  # the packaged model's int8 twin


def test_int8_backend_for_a_directory_without_an_export_names_the_field(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="backend"):
        TextEncoder(EncoderConfig(model_path=str(model_dir), backend="onnx-int8", max_length=32))


def test_int8_backend_naming_the_packaged_model_explicitly_serves_its_packaged_build() -> None:
    from shoploop.text.encoder import packaged_minilm_path

    enc = TextEncoder(EncoderConfig(model_path=str(packaged_minilm_path()), backend="onnx-int8"))
    assert enc.encode(["cordless drill"]).shape == (1, 384)
