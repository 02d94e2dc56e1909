"""The engine's typed configuration: one frozen dataclass per component, composed here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shoploop.data.cleaning import CleaningConfig
from shoploop.feedback.exploration import ExplorationConfig
from shoploop.feedback.online import OnlineConfig
from shoploop.retrieval.config import HybridConfig
from shoploop.retrieval.suggest import SuggestConfig

RecommenderKind = Literal["sasrec", "item_knn", "ease", "popularity"]


@dataclass(frozen=True)
class RecommenderSettings:
    kind: RecommenderKind = "sasrec"
    use_text: bool = True  # SASRec item table starts from product text embeddings (cold start)
    text_whitening: bool = True  # PCA-whiten those embeddings first (+0.004 NDCG@10 on Amazon)
    word_bag: bool = True  # plus learned vectors of the words products share (brand, type, ...)
    max_len: int = 50
    hidden: int = 64
    epochs: int = 30
    time_budget_minutes: float = 1.5  # keeps `make demo` within its three minutes
    min_users: int = 20  # below this the sequential model cannot learn; item-kNN is used
    # Blend SASRec with EASE (order-free item-item) when that helps on the held-out last steps:
    # EASE's share is picked from this grid by NDCG@10 there (0 = SASRec alone). On Amazon
    # Scientific the blend took test NDCG@10 from 0.093 to 0.103 (benchmarks/sequential.py); on
    # the demo store the held-out NDCG@10 is 0.184 SASRec alone, 0.223 at share 1.0, 0.258 at 0.3.
    ease_weights: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
    # EASE inverts an items x items matrix and serves an items x items float32 one: skip the
    # blend above this catalog size (10k items: a 0.8 GB float64 inverse while training, 0.4 GB
    # held while serving, about a minute per L2 on two cores).
    ease_max_items: int = 10_000
    ease_l2s: tuple[float, ...] = (30.0, 100.0, 500.0)  # EASE's L2, picked first, on EASE alone

    def __post_init__(self) -> None:
        if not self.ease_l2s:
            raise ValueError("ease_l2s must hold at least one L2 value")
        if any(not 0.0 <= w <= 1.0 for w in self.ease_weights):
            raise ValueError(f"ease_weights must lie within [0, 1], got {self.ease_weights}")


@dataclass(frozen=True)
class ServingSettings:
    default_k: int = 20
    max_k: int = 100
    search_candidates: int = 200
    # A search sorted by price re-orders this many of the most relevant matches (the head of the
    # relevance order), so an accessory that barely matches the query cannot lead "lowest price".
    sort_pool: int = 100
    # Category pages (`Engine.browse`): the share of the shopper's recommender scores in the
    # featured order, next to the category's popularity (see engine/browse.py).
    browse_model_weight: float = 0.5
    browse_affinity_weight: float = 1.0  # ... and of the shopper's brand / category affinity
    # Weight of the shopper's category / brand affinity and of the learned per-query
    # click-through in the final search score (relative to the normalised retrieval score).
    personalization_weight: float = 0.15
    query_ctr_weight: float = 0.25
    # None: the learned ranker orders the candidates freely. A number: no candidate rises more
    # than this many places above its place in the heuristic order (retrieval + the real-time
    # lifts), a trust region for a ranker trained on few lists (see docs/feedback-loop.md).
    ranker_max_promotion: int | None = None
    # Items of a learned ranker's list that carry its per-feature contributions (TreeSHAP) in
    # their explanation; the rest carry its score. The contributions cost far more than the
    # scores: with a full-size ranker (5 bags x 300 trees) category pages served 84 requests/s
    # explaining 3 items and 38 explaining 20 (benchmarks/results/serving_browse_ranker*.md).
    ranker_explain_top: int = 3
    cross_encoder_top: int = 30  # candidates the fine-tuned cross-encoder re-scores (cost is per pair)
    cross_encoder_weight: float = 0.5  # its share of the head's final score
    cross_encoder_minutes: float = 10.0  # training budget for `train("cross_encoder")`
    cross_encoder_min_pairs: int = 200
    bi_encoder_minutes: float = 10.0  # training budget for `train("bi_encoder")` (search's encoder)
    bi_encoder_min_pairs: int = 200  # clicked (query, product) pairs needed before it trains
    trending_refresh_seconds: float = 5.0  # trending is a snapshot at most this old
    trending_depth: int = 5000  # items kept in the snapshot (filters pick from these)
    # Home feed impression discounting: each unit of a shopper's fatigue with an item (one
    # showing at the top slot, less further down; see OnlineConfig) moves it this many places
    # down their next feed. 0 serves the model's order however often it was passed over.
    fatigue_rank_step: float = 5.0
    # numpy's BLAS threads from `start()` on (None: leave them alone). One, because spinning
    # BLAS workers slow the cross-encoder that runs next in the same request (text.blas).
    blas_threads: int | None = 1

    def __post_init__(self) -> None:
        if self.ranker_max_promotion is not None and self.ranker_max_promotion < 0:
            raise ValueError(f"ranker_max_promotion must be None or >= 0, got {self.ranker_max_promotion}")
        if self.ranker_explain_top < 0:
            raise ValueError(f"ranker_explain_top must be >= 0, got {self.ranker_explain_top}")


@dataclass(frozen=True)
class EngineConfig:
    home: Path | None = None  # None = in-memory stores (tests); otherwise a shop home directory
    search: HybridConfig = field(default_factory=HybridConfig)
    recommender: RecommenderSettings = field(default_factory=RecommenderSettings)
    serving: ServingSettings = field(default_factory=ServingSettings)
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    suggest: SuggestConfig = field(default_factory=SuggestConfig)
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    # None follows the shop's choice (a pseudonymisation key in its home or the environment), so
    # the server, the importer and access requests agree; True turns it on (creating the key).
    pseudonymize_user_ids: bool | None = None
    seed: int = 0
