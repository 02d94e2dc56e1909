"""shoploop.ranking: re-ranking of retrieved candidates (cross-encoder, learning to rank, rules).

Heavy dependencies (torch, transformers, onnxruntime) are imported lazily inside the models, so
importing this package stays cheap.
"""

from shoploop.ranking.cross_encoder import CrossEncoderConfig, CrossEncoderReranker
from shoploop.ranking.training_pairs import GradedPair, group_by_query, mine_pairs, relevance_to_label

__all__ = [
    "CrossEncoderConfig",
    "CrossEncoderReranker",
    "GradedPair",
    "group_by_query",
    "mine_pairs",
    "relevance_to_label",
]
