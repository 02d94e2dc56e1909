"""Typed configuration of the hybrid searcher (one frozen dataclass per component)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from shoploop.retrieval.bm25 import BM25Config
from shoploop.retrieval.category_intent import CategoryIntentConfig
from shoploop.retrieval.dense import DenseConfig
from shoploop.retrieval.fusion import FusionConfig
from shoploop.retrieval.query_understanding import TypoConfig
from shoploop.text.encoder import EncoderConfig
from shoploop.text.onnx_export import encoder_int8_path

__all__ = ["HybridConfig"]


@dataclass(frozen=True)
class HybridConfig:
    bm25: BM25Config = field(default_factory=BM25Config)
    dense: DenseConfig = field(default_factory=DenseConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # product vectors
    # Query-time encoder backend. None = the product encoder's own. "auto" = the int8 ONNX build
    # when products are encoded by the packaged MiniLM (it is the same model quantised: on Home
    # Depot it cost nothing -- NDCG@10 0.4264 vs 0.4259 with torch -- and answers a query several
    # times faster, benchmarks/results/search_relevance.md) and when a fine-tuned model directory
    # carries its own int8 export (text.onnx_export; click-trained indexes do), else the product
    # encoder's own.
    query_backend: Literal["auto", "torch", "onnx-int8"] | None = "auto"
    use_dense: bool = True
    fusion: FusionConfig = field(default_factory=FusionConfig)
    typo: TypoConfig = field(default_factory=TypoConfig)
    typo_correction: bool = True
    synonyms: bool = True
    synonyms_path: str | None = None  # None = the packaged synonyms.default.txt
    intent: CategoryIntentConfig = field(default_factory=CategoryIntentConfig)
    intent_level: int = 2  # categories are path prefixes of this depth ("Tools > Drills")
    intent_top: int = 3
    title_repeat: int = 2  # the title counts this many times in BM25 (a cheap title-field boost)
    max_query_chars: int = 256  # longer queries are truncated (and the response says so)
    embedding_cache_dir: str | None = None  # on-disk cache of product vectors by (model, text hash)

    def resolved_query_backend(self) -> Literal["torch", "onnx-int8"]:
        """The backend queries are actually encoded with (see `query_backend`)."""
        if self.query_backend is None:
            return self.encoder.backend
        if self.query_backend == "auto":
            path = self.encoder.model_path
            has_int8 = path is None or encoder_int8_path(path) is not None
            return "onnx-int8" if has_int8 and self.encoder.backend == "torch" else self.encoder.backend
        return self.query_backend

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HybridConfig:
        fusion = dict(data["fusion"])
        fusion["weights"] = tuple(fusion["weights"])
        return cls(
            bm25=BM25Config(**data["bm25"]),
            dense=DenseConfig(**data["dense"]),
            encoder=EncoderConfig(**data["encoder"]),
            query_backend=data.get("query_backend"),
            use_dense=data["use_dense"],
            fusion=FusionConfig(**fusion),
            typo=TypoConfig(**data["typo"]),
            typo_correction=data["typo_correction"],
            synonyms=data["synonyms"],
            synonyms_path=data.get("synonyms_path"),
            intent=CategoryIntentConfig(**data["intent"]),
            intent_level=data["intent_level"],
            intent_top=data["intent_top"],
            title_repeat=data["title_repeat"],
            max_query_chars=data["max_query_chars"],
            embedding_cache_dir=data.get("embedding_cache_dir"),
        )
