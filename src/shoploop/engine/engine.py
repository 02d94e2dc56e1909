"""`Engine`: the library API a shop calls; the HTTP API and the storefront are shells on it.

Every served list goes through the same tail: personalise -> merchandising rules ->
exploration (with exact propensities) -> log the impression -> update online state. So
whichever surface a list comes from, it is logged the way learning to rank, off-policy
evaluation and A/B analysis need.
"""

from __future__ import annotations

import heapq
import logging
import math
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import numpy as np

from shoploop.data.ingest import EventIntake, RowOutcome
from shoploop.domain import ANONYMOUS_USER, BaseEvent, ImpressionEvent, Product, ShownItem
from shoploop.domain.served import ServedItem, ServedList
from shoploop.engine.browse import (
    LIST_ORDERS,
    OUT_OF_STOCK_PENALTY,
    CategoryListing,
    affinity_scores,
    best_first,
    build_listing,
    featured_scores,
    price_first,
    standardise,
)
from shoploop.engine.config import EngineConfig
from shoploop.engine.event_follower import EventFollower, OwnWrites
from shoploop.engine.finetune_gate import gated_finetune
from shoploop.engine.search_finetune import (
    bi_encoder_examples,
    finetune_searcher,
    save_with_encoder,
    saved_config,
)
from shoploop.engine.training import (
    Interactions,
    RecommenderBundle,
    collect_interactions,
    register,
    train_recommender,
    train_searcher,
)
from shoploop.engine.variants import OPTIONAL_MODELS, SURFACE_RANKERS, ServingOverride, VariantSpecError
from shoploop.evaluation.ab import ExperimentStore
from shoploop.evaluation.search_queries import QueryRow, query_report_from_log
from shoploop.feedback.click_models import ExaminationCurve
from shoploop.feedback.click_pairs import ClickPairs, click_pairs
from shoploop.feedback.exploration import ExplorationPolicy
from shoploop.feedback.features import FeatureContext
from shoploop.feedback.gate import GateDecision
from shoploop.feedback.ltr import LearnedRanker
from shoploop.feedback.online import OnlineState, UserProfile
from shoploop.feedback.search_gate import SearchGateConfig
from shoploop.feedback.training_data import (
    BASE_FIELD_KEY,
    BASE_SCORES_KEY,
    FEATURED_FIELD,
    LIST_EVENT_TYPES,
    MODEL_FIELD,
    join_logs,
)
from shoploop.privacy import Pseudonymizer, shop_pseudonymizer
from shoploop.privacy.access import quarantined_rows_naming, shopper_document_from_stores
from shoploop.ranking.cross_encoder import CrossEncoderConfig, CrossEncoderReranker, blend_with_first_stage
from shoploop.ranking.rules import RULES_FILENAME, Candidate, RuleBook, RuleContext, apply_rules
from shoploop.recommend.surfaces import ItemMeta, Recommendation, Surfaces
from shoploop.retrieval.filters import Filters
from shoploop.retrieval.hybrid import HybridSearcher, InvalidQuery, SearchHit
from shoploop.retrieval.shop_synonyms import FILE_NAME as SYNONYMS_FILE
from shoploop.retrieval.shop_synonyms import check_rules
from shoploop.retrieval.suggest import BLOCKLIST_FILE, QuerySuggester, Suggestion, parse_blocklist
from shoploop.store.audit import BadTrailQuery, recent_decisions
from shoploop.store.files import CheckedTextFile
from shoploop.store.home import Stores
from shoploop.store.memory import utcnow
from shoploop.store.protocols import CatalogChange, EventLog, ModelVersion, RegistryDecision
from shoploop.text.blas import limit_blas_threads

log = logging.getLogger("shoploop.engine")

ANONYMOUS = ANONYMOUS_USER
MAX_SUGGEST_CHARS = 200  # autocomplete input; longer is pasted text, not typing


class InvalidRequest(ValueError):  # noqa: N818 - reads better at call sites than InvalidRequestError
    """Bad input to a library call; `field` names it so the API can answer 4xx with it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class NotFound(KeyError):  # noqa: N818
    def __init__(self, what: str, key: str) -> None:
        super().__init__(f"{what} {key!r} not found")
        self.what = what
        self.key = key


def _minmax(values: np.ndarray) -> np.ndarray:
    if len(values) == 0:
        return values
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi > lo else np.ones_like(values)


class Engine:
    """Search, recommendations, feedback intake and model management for one shop."""

    def __init__(self, config: EngineConfig, stores: Stores) -> None:
        self.config = config
        # Our appends go through OwnWrites, so the follower can tell them from other writers'.
        own = OwnWrites(stores.events)
        stores = replace(stores, events=cast(EventLog, own))
        self.stores = stores
        self.rules = RuleBook(stores.home / RULES_FILENAME if stores.home else None)
        # the merchandisers' own synonyms, on top of the defaults
        self.shop_synonyms = CheckedTextFile(stores.home, SYNONYMS_FILE, check_rules)
        self.exploration = ExplorationPolicy(config.exploration)
        self.pseudonymize: Callable[[str], str] | None = None
        if config.pseudonymize_user_ids is None:
            self.pseudonymize = shop_pseudonymizer(stores.home)
        elif config.pseudonymize_user_ids and stores.home:
            self.pseudonymize = Pseudonymizer.from_home(stores.home)
        self.intake = EventIntake(stores, config.cleaning, user_ids=self.pseudonymize)
        self.products: dict[str, Product] = {}
        self.online = OnlineState(config.online, lookup=self.products.get)
        self.searcher: HybridSearcher | None = None
        self.recs: RecommenderBundle | None = None
        self.surfaces: Surfaces | None = None
        self.cross_encoder: CrossEncoderReranker | None = None  # fine-tuned from feedback, optional
        self.ranker: LearnedRanker | None = None  # learned re-ranker; None = heuristic scores
        self.browse_ranker: LearnedRanker | None = None  # category pages' own; None = featured order
        self.home_ranker: LearnedRanker | None = None  # the home feed's own; None = the model's order
        self.versions: dict[str, int] = {}
        # Model versions that A/B variants serve instead of the active ones, loaded on first
        # use: (name, version) -> model (for the recommender: its bundle and surfaces).
        self._variant_models: dict[tuple[str, int], Any] = {}
        self._variant_failures: dict[tuple[str, int], str] = {}  # -> why it could not be loaded
        self._catalog_version = 0
        self._lock = threading.RLock()  # guards model swaps and catalog mutations
        self._requests = 0
        self._explorations = 0
        self._trending: tuple[float, list[tuple[str, float]]] | None = None
        # category pages' shopper-independent parts, newest last (Engine._listing)
        self._listings: OrderedDict[tuple[int, int, str], CategoryListing] = OrderedDict()
        self._listings_lock = threading.Lock()
        self._top_categories: tuple[object, int, dict[str, int]] | None = None
        # Autocomplete learns from the same event stream as the online state.
        self.suggester = QuerySuggester(config.suggest, clock=lambda: self.clock().timestamp())
        self.suggest_blocklist = CheckedTextFile(stores.home, BLOCKLIST_FILE, parse_blocklist)
        self._known_bots: set[str] = set()  # flagged users already taken out of the suggester
        self.suggester.set_blocked(self.suggest_blocklist.value)
        self._events = EventFollower(own, self._observe)
        self._events.skip_to_end()
        # Follows the log's purge record (`EventLog.purged_since`) like `_events` follows the
        # log: shoppers whose events a purge erased, in any process, are rebuilt at the next
        # sync. The lock makes reading and advancing the cursor one step for concurrent syncs.
        self._purge_lock = threading.Lock()
        self._purge_seq = own.last_purge_seq()
        self.started_at: float | None = None
        # Stamps served lists; a simulation swaps in a simulated clock to be reproducible.
        self.clock: Callable[[], datetime] = utcnow

    # ------------------------------------------------------------------ lifecycle
    def start(
        self, *, train_if_missing: bool = True, progress: Callable[[str], None] | None = None
    ) -> Engine:
        """Load the catalog and the active models (training them if there are none), replay state.

        A started engine is left as it is: a second replay would count every event twice in
        the online state and autocomplete (later changes arrive through `sync_with_stores`)."""
        if self.started_at is not None:
            return self
        say = progress or log.info
        t0 = time.perf_counter()
        if self.config.serving.blas_threads is not None:
            limit_blas_threads(self.config.serving.blas_threads)
        self.products.clear()
        self.products.update((p.item_id, p) for p in self.stores.catalog.iter_products())
        self._catalog_version = self.stores.catalog.version
        self.suggester.set_catalog(self.products.values())
        say(f"catalog: {len(self.products)} products (version {self._catalog_version})")
        if self.products:
            self._load_or_train("search", train_if_missing, say)
            self._load_or_train("recommender", train_if_missing, say)
            self._load_or_train("cross_encoder", False, say)  # fine-tuned on demand (`shoploop train`)
            self._load_or_train("ranker", False, say)  # learned from feedback, never on start-up
            self._load_or_train("browse_ranker", False, say)
            self._load_or_train("home_ranker", False, say)
        # Purges noted from here on are rebuilt at the next sync; older ones are already out of
        # the log the replay reads. Taken before the replay, not after like the event cursor: a
        # purge noted during the replay may have erased events the replay still saw.
        with self._purge_lock:
            self._purge_seq = self.stores.events.last_purge_seq()
        n = self.online.replay(self._also_to_suggester(self.stores.events.scan(exclude_flagged=True)))
        self.suggester.rebuild()
        # Follow the log from here (events another process appends during the replay itself
        # are picked up at the next start-up).
        self._events.skip_to_end()
        say(f"online state: replayed {n} events in {time.perf_counter() - t0:.1f}s total start-up")
        self.started_at = time.time()
        return self

    def _observe(self, event: BaseEvent) -> None:
        """Every accepted event updates what the engine knows right now."""
        self.online.update(event)
        self.suggester.observe(event)

    def _also_to_suggester(self, events: Iterable[BaseEvent]) -> Iterator[BaseEvent]:
        for event in events:
            self.suggester.observe(event)
            yield event

    @property
    def ready(self) -> bool:
        return self.started_at is not None and (not self.products or self.searcher is not None)

    def _load_or_train(self, name: str, train_if_missing: bool, say: Callable[[str], None]) -> None:
        active = self.stores.registry.active(name)
        if active is None and train_if_missing:
            say(f"{name}: no active model, training one")
            active = self.train(name, promote=True)
        if active is not None:
            self._activate(active)
            say(f"{name}: v{active.version} active")

    def train(self, name: str, *, promote: bool = False, until: datetime | None = None) -> ModelVersion:
        """Train `name` from the stores and register a candidate: "search" (the index),
        "recommender", "cross_encoder" (the re-ranker, from clicked searches) or "bi_encoder"
        (search's text encoder fine-tuned on clicked searches; registered as a "search" version).

        `until`: learn only from events logged before it (a gate holds out what came after)."""
        products = list(self.stores.catalog.iter_products())
        if not products:
            raise InvalidRequest("catalog", "is empty: import products before training")
        interactions = collect_interactions(self.stores.events.scan(exclude_flagged=True, until=until))
        catalog_version = self.stores.catalog.version
        if name == "search":
            searcher = train_searcher(products, interactions, self.config)
            version = register(
                self.stores,
                "search",
                searcher.save,
                metrics={"products": len(products), "catalog_version": catalog_version},
                config=searcher.config.to_dict(),
            )
        elif name == "recommender":
            text = self._text_vectors(products)
            bundle, metrics = train_recommender(
                products, interactions, self.config.recommender, text_vectors=text, seed=self.config.seed
            )
            metrics["catalog_version"] = catalog_version
            version = register(
                self.stores,
                "recommender",
                bundle.save,
                metrics=metrics,
                config=asdict(self.config.recommender),
            )
        elif name == "cross_encoder":
            version = self._train_cross_encoder(until)
        elif name == "bi_encoder":
            version = self._train_bi_encoder(products, interactions, catalog_version, until)
        else:
            raise InvalidRequest(
                "name",
                f"unknown model {name!r}; expected 'search', 'recommender', 'cross_encoder' or 'bi_encoder'",
            )
        if promote:
            version = self.stores.registry.promote(
                version.name, version.version, reason="trained on start-up"
            )
        return version

    def train_gated(
        self,
        name: str,
        config: SearchGateConfig = SearchGateConfig(),
        *,
        curve: ExaminationCurve | None = None,
    ) -> tuple[ModelVersion, GateDecision]:
        """Fine-tune "bi_encoder" or "cross_encoder" on all but the newest clicked searches and
        promote it only if replaying those ranks what shoppers chose higher (`engine.finetune_gate`)."""
        return gated_finetune(self, name, config, curve=curve)

    def _clicked_search_pairs(self, valid_frac: float, until: datetime | None = None) -> ClickPairs:
        """(query, product text) pairs graded by what shoppers did with served search lists."""
        # bot-flagged shoppers are left out, as every other training read does
        lists = join_logs(self.stores.events.scan(types=LIST_EVENT_TYPES, until=until, exclude_flagged=True))

        def text(item_id: str) -> str | None:
            product = self.products.get(item_id)
            return product.text() if product else None

        return click_pairs(lists, text, valid_frac=valid_frac, seed=self.config.seed)

    def _train_bi_encoder(
        self,
        products: Sequence[Product],
        interactions: Interactions,
        catalog_version: int,
        until: datetime | None,
    ) -> ModelVersion:
        """Fine-tune search's text encoder on clicked searches; the re-encoded index is a candidate."""
        if not self.config.search.use_dense:
            raise InvalidRequest(
                "search", "uses no dense retrieval (use_dense=False): no text encoder to fine-tune"
            )
        # the fine-tune holds out its own query-disjoint validation split
        positives, hard = bi_encoder_examples(self._clicked_search_pairs(valid_frac=0.0, until=until))
        needed = self.config.serving.bi_encoder_min_pairs
        if len(positives) < max(needed, 2):
            raise InvalidRequest(
                "events",
                f"{len(positives)} clicked (query, product) pairs; the bi-encoder needs at least {needed}",
            )
        with tempfile.TemporaryDirectory(prefix="shoploop-bi-encoder-") as tmp:
            searcher, model_dir, metrics = finetune_searcher(
                products, positives, hard, interactions, self.config, Path(tmp)
            )
            metrics["catalog_version"] = catalog_version
            return register(
                self.stores,
                "search",
                save_with_encoder(searcher, model_dir),
                metrics=metrics,
                config=saved_config(searcher).to_dict(),
            )

    def _train_cross_encoder(self, until: datetime | None) -> ModelVersion:
        """Fine-tune the re-ranker on (query, product) pairs from shoppers' clicks and purchases."""
        pairs = self._clicked_search_pairs(valid_frac=0.1, until=until)
        settings = self.config.serving
        if len(pairs.train) < settings.cross_encoder_min_pairs or not pairs.valid:
            raise InvalidRequest(
                "events",
                f"{len(pairs.train)} training pairs from clicked searches; "
                f"the cross-encoder needs at least {settings.cross_encoder_min_pairs}",
            )
        config = CrossEncoderConfig(
            time_budget_minutes=settings.cross_encoder_minutes, seed=self.config.seed, backend="auto"
        )
        model = CrossEncoderReranker(config).fit(pairs.train, pairs.valid)
        record = getattr(model, "record_", None)
        metrics = {
            "train_pairs": len(pairs.train),
            "valid_pairs": len(pairs.valid),
            "queries": pairs.queries,
            "valid_ndcg10": float(getattr(record, "best_valid_ndcg", 0.0) or 0.0),
        }
        return register(self.stores, "cross_encoder", model.save, metrics=metrics, config=asdict(config))

    def _cross_rerank(
        self, query: str, cands: list[Candidate], model: CrossEncoderReranker | None
    ) -> list[Candidate]:
        """Re-order the top candidates with the fine-tuned cross-encoder, when one is active.

        Only the top `cross_encoder_top` are scored (the cost is per pair); within them the
        final score blends the normalised first-stage score with the normalised cross-encoder
        score, so the re-ranker refines rather than overrules retrieval.
        """
        top = self.config.serving.cross_encoder_top
        if model is None or not cands:
            return cands
        head, tail = cands[:top], cands[top:]
        texts = [self.products[c.item_id].text() if c.item_id in self.products else "" for c in head]
        raw = model.score(query, texts)
        first = np.array([c.score for c in head], dtype=float)
        blended = blend_with_first_stage(first, raw, self.config.serving.cross_encoder_weight)
        offset = max((c.score for c in tail), default=0.0)
        for c, value, logit in zip(head, blended, raw, strict=True):
            c.explanation["cross_encoder"] = float(logit)
            c.score = offset + 1.0 + float(value)  # the re-ranked head stays above the tail
        head.sort(key=lambda c: -c.score)
        return head + tail

    def item_vector(self, item_id: str) -> np.ndarray | None:
        """A product's text vector from the search index (L2-normalised), None without one; the
        learned rankers' "similar to recently viewed" feature reads it, in training and serving."""
        searcher = self.searcher
        return _text_vector(searcher, item_id) if searcher is not None else None

    def _text_vectors(self, products: Sequence[Product]) -> np.ndarray | None:
        """Product text vectors aligned with `products` (row 0 = padding), from the search index."""
        searcher = self.searcher
        if searcher is None or searcher.dense_ is None:
            return None
        out = np.zeros((len(products) + 1, searcher.dense_.vectors_.shape[1]), dtype=np.float32)
        for row, p in enumerate(products, start=1):  # one searcher for all, even if swapped meanwhile
            vec = _text_vector(searcher, p.item_id)
            if vec is not None:
                out[row] = vec
        return out

    def load_searcher(self, version: ModelVersion) -> HybridSearcher:
        """A registered search index, ready to serve this catalog (not activated)."""
        current = self.searcher
        searcher = HybridSearcher.load(
            version.path,
            # reused only for an index built with the same model
            encoder=current.encoder if current is not None else None,
            encoder_built_for=current.config.encoder if current is not None else None,
            query_backend=self.config.search.query_backend,  # this engine's serving choice
            share_products=self.products,
        )
        # Catalog changes after the index was built are replayed, not rebuilt.
        self._replay_catalog(searcher, int(version.metrics.get("catalog_version", 0)))
        searcher.set_shop_synonyms(self.shop_synonyms.value)
        searcher.warm_up()  # before it takes traffic (start-up, or a hot swap after retraining)
        return searcher

    def replay_ranking(
        self,
        query: str,
        searcher: HybridSearcher,
        cross_encoder: CrossEncoderReranker | None,
        *,
        k: int = 10,
    ) -> list[str]:
        """The top `k` for `query` from retrieval and a cross-encoder alone: no shopper, no learned
        ranker, no exploration and nothing logged. What the fine-tuned models' promotion gate
        compares (`feedback.search_gate`), so only the model under test differs between sides."""
        try:
            result = searcher.search(query, k=max(k, 50), candidates=self.config.serving.search_candidates)
        except InvalidQuery:
            return []
        ids, scores = [h.item_id for h in result.items], np.array([h.score for h in result.items])
        return self._cross_rerank_ids(query, ids, scores, cross_encoder)[:k]

    def replay_order(
        self,
        query: str,
        items: Sequence[str],
        searcher: HybridSearcher,
        cross_encoder: CrossEncoderReranker | None,
    ) -> list[str]:
        """`items` (a logged list's shown products) re-ordered as retrieval and a cross-encoder
        alone would order them for `query`; products no longer in the index go last, in their
        logged order. The "shown" side of the fine-tuned models' gate (`feedback.search_gate`)."""
        try:
            fused = searcher.score_items(query, list(items))
        except InvalidQuery:
            return list(items)
        known = np.isfinite(fused)
        order = np.flatnonzero(known)[np.argsort(-fused[known], kind="stable")]
        ranked = self._cross_rerank_ids(query, [items[i] for i in order], fused[order], cross_encoder)
        return ranked + [item for item, ok in zip(items, known, strict=True) if not ok]

    def _cross_rerank_ids(
        self, query: str, ids: Sequence[str], scores: np.ndarray, cross_encoder: CrossEncoderReranker | None
    ) -> list[str]:
        """`ids` (best first, with their first-stage `scores`) after the cross-encoder's re-rank,
        first-stage scores min-max scaled as serving scales them."""
        scaled = _minmax(np.asarray(scores, dtype=float))
        cands = [Candidate(i, float(s), {}) for i, s in zip(ids, scaled, strict=True)]
        return [c.item_id for c in self._cross_rerank(query, cands, cross_encoder)]

    def _activate(self, version: ModelVersion) -> None:
        if version.name == "search":
            searcher = self.load_searcher(version)
            with self._lock:
                self.searcher = searcher
        elif version.name == "recommender":
            bundle = RecommenderBundle.load(version.path)
            surfaces = self._surfaces_for(bundle)
            with self._lock:
                self.recs = bundle
                self.surfaces = surfaces
        elif version.name == "cross_encoder":
            reranker = CrossEncoderReranker.load(version.path)
            with self._lock:
                self.cross_encoder = reranker
        elif version.name == "ranker":
            ranker = LearnedRanker.load(version.path)
            with self._lock:
                self.ranker = ranker
                # Its click-through features were built over this curve's expected examinations
                # (None: raw CTR); count live impressions the same way from now on.
                self.online.set_examination(ranker.examination)
        elif version.name in SURFACE_RANKERS:
            # Trained on features counted the search ranker's way, so it leaves the counting alone.
            surface_ranker = LearnedRanker.load(version.path)
            with self._lock:
                setattr(self, version.name, surface_ranker)
        self.versions[version.name] = version.version

    def _replay_catalog(self, searcher: HybridSearcher, since: int) -> None:
        _apply_to_searcher(searcher, self.stores.catalog.changes_since(since), self.products)

    @property
    def model_version(self) -> str:
        return self._served_versions(None)

    def _served_versions(self, override: ServingOverride | None) -> str:
        """`name:vN` of every model a list was served with, the variant's swaps applied."""
        versions: dict[str, int | None] = dict(self.versions)
        if override is not None:
            versions.update(override.models)
        parts = [f"{name}:v{v}" for name, v in sorted(versions.items()) if v is not None]
        return "+".join(parts) or "untrained"

    def _recommender(self, override: ServingOverride | None) -> tuple[RecommenderBundle, Surfaces]:
        """The home feed's bundle and surfaces: the active ones or the variant's version."""
        self._bundle()  # a clear error when none is trained yet
        return self._model("recommender", override)

    def _model(self, name: str, override: ServingOverride | None) -> Any:
        """The `name` model to serve with: the active one, or the variant's version (None = without)."""
        active = {
            "ranker": self.ranker,
            "browse_ranker": self.browse_ranker,
            "home_ranker": self.home_ranker,
            "cross_encoder": self.cross_encoder,
            "recommender": (self.recs, self.surfaces),
        }[name]
        if override is None or name not in override.models:
            return active
        version = override.models[name]
        if version is None:
            return None
        if version == self.versions.get(name):
            return active
        key = (name, version)
        model = self._variant_models.get(key)
        if model is None:
            model = self.load_variant_model(name, version)
        return model

    def load_variant_model(self, name: str, version: int) -> Any:
        """Load (once) a registered model version for A/B variants; raises VariantSpecError
        when the registry has no such version or its artifact cannot be loaded."""
        key = (name, version)
        with self._lock:
            if key in self._variant_models:
                return self._variant_models[key]
            if key in self._variant_failures:  # do not retry a broken artifact on every request
                raise VariantSpecError("model_version", self._variant_failures[key])
            try:
                mv = self.stores.registry.get(name, version)
            except KeyError as err:
                raise VariantSpecError("model_version", f"the registry has no {name} v{version}") from err
            model: Any
            try:
                if name == "recommender":
                    bundle = RecommenderBundle.load(mv.path)
                    model = (bundle, self._surfaces_for(bundle))
                elif name == "ranker" or name in SURFACE_RANKERS:
                    model = LearnedRanker.load(mv.path)
                else:
                    model = CrossEncoderReranker.load(mv.path)
            except Exception as err:  # a damaged or half-deleted artifact directory
                reason = f"{name} v{version} could not be loaded from {mv.path}: {err}"
                log.exception("A/B variant model: %s", reason)
                self._variant_failures[key] = reason
                raise VariantSpecError("model_version", reason) from err
            self._variant_models[key] = model
            return model

    def forget_variant_models(self) -> None:
        """Drop the models loaded for experiments (called when the running set changes)."""
        with self._lock:
            self._variant_models.clear()
            self._variant_failures.clear()

    # ------------------------------------------------------------------ validation helpers
    def _check_k(self, k: int, page: int = 1) -> None:
        max_k = self.config.serving.max_k
        if not 1 <= k <= max_k:
            raise InvalidRequest("k", f"must be between 1 and {max_k}")
        if not 1 <= page <= 50:
            raise InvalidRequest("page", "must be between 1 and 50")

    def _user(self, user_id: str | None) -> str | None:
        if user_id is None or not user_id.strip():
            return None
        if len(user_id) > 200:
            raise InvalidRequest("user_id", "must be at most 200 characters")
        return self.pseudonymize(user_id) if self.pseudonymize else user_id

    @staticmethod
    def _filters(filters: Filters | Mapping[str, Any] | None) -> Filters | None:
        if filters is None or isinstance(filters, Filters):
            return filters
        try:
            return Filters(**{k: v for k, v in filters.items() if v is not None})
        except Exception as err:  # pydantic ValidationError or an unknown keyword
            raise InvalidRequest("filters", str(err).splitlines()[-1] if str(err) else "invalid") from err

    # ------------------------------------------------------------------ search
    def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        filters: Filters | Mapping[str, Any] | None = None,
        k: int | None = None,
        page: int = 1,
        override: ServingOverride | None = None,
        sort: str = "relevance",
    ) -> ServedList:
        """`override`: what an A/B variant serves instead (see `shoploop.engine.variants`).
        `sort`: "relevance", or "price_asc" / "price_desc" to order the `sort_pool` most relevant
        matches by price (unpriced ones last), without exploration or boosts."""
        k = self.config.serving.default_k if k is None else k
        self._check_k(k, page)
        if not isinstance(query, str):
            raise InvalidRequest("query", "must be a string")
        _check_order(sort)
        user = self._user(user_id)
        flt = self._filters(filters)
        searcher = self.searcher
        if searcher is None:
            raise InvalidRequest("catalog", "is empty or the search index is not built yet")
        need = k * page
        try:
            result = searcher.search(
                query,
                filters=flt,
                k=max(need, 50),
                candidates=max(self.config.serving.search_candidates, need),
            )
        except InvalidQuery as err:
            raise InvalidRequest(err.field, err.reason) from err
        # Shallow copies: dataclasses.asdict deep-copies recursively, ~70 us a search.
        understood = {
            k: v.copy() if isinstance(v, list | dict) else v for k, v in vars(result.understood).items()
        }
        profile = self.online.profile(user)
        scores = _minmax(np.array([h.score for h in result.items], dtype=float))
        cands = []
        lifts = self._query_ctr_lifts(query, [h.item_id for h in result.items])
        for hit, base in zip(result.items, scores, strict=True):
            expl: dict[str, Any] = {"retrieval_score": hit.score}
            score = float(base)
            score += self._personal_boost(hit.item_id, profile, expl)
            ctr_lift = lifts.get(hit.item_id, 0.0)
            if ctr_lift:
                expl["query_ctr_lift"] = ctr_lift
                score += ctr_lift
            # The searcher's per-hit detail is only built for items that end up shown.
            cands.append(Candidate(hit.item_id, score, expl, detail=_hit_detail(hit)))
        cands.sort(key=lambda c: -c.score)
        order = None if sort == "relevance" else sort
        if order is not None:
            # The shopper chose the order: the re-rankers' work would be overwritten, so the
            # pool is the head of the heuristic relevance order.
            cands = by_price(cands[: max(self.config.serving.sort_pool, need)], self.products, order)
        else:
            cands = self._cross_rerank(query, cands, self._model("cross_encoder", override))
        ranker = self._model("ranker", override) if order is None else None
        if ranker is not None:  # the learned ranker replaces the heuristic scores above
            for cand in cands:  # its features read the retrievers' scores in the explanation
                cand.full_explanation()
            ctx = FeatureContext(
                self.online, self.products.get, query=query, profile=profile, item_vector=self.item_vector
            )
            cands = ranker.rerank(
                cands,
                ctx,
                max_promotion=self.config.serving.ranker_max_promotion,
                explain_top=self.config.serving.ranker_explain_top,
            )
        categories = tuple(c for c, _ in result.understood.predicted_categories)
        if flt and flt.category:
            categories += tuple(part.strip() for part in flt.category.split(">"))
        return self._serve(
            "search",
            cands,
            user=user,
            session_id=session_id,
            k=k,
            page=page,
            query=query,
            categories=categories,
            understood=understood,
            facets=result.facets,
            total=result.n_candidates,
            override=override,
            order=order,
        )

    def browse(
        self,
        category: str,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        filters: Filters | Mapping[str, Any] | None = None,
        k: int | None = None,
        page: int = 1,
        sort: str = "relevance",
        override: ServingOverride | None = None,
    ) -> ServedList:
        """A category page: every product under `category` ("Tools > Drills"), featured for the
        shopper (popularity + their recommender's scores + brand affinity, in stock first; see
        engine/browse.py) or by price; with facets, rules scoped to the category, exploration
        and an impression like any served list. NotFound when no product is in the category."""
        k = self.config.serving.default_k if k is None else k
        self._check_k(k, page)
        parts = [part.strip() for part in category.split(">")] if isinstance(category, str) else []
        if not parts or not all(parts):
            raise InvalidRequest("category", "must name a category path, e.g. 'Tools > Drills'")
        _check_order(sort)
        user = self._user(user_id)
        flt = self._filters(filters)
        if flt is not None and flt.category is not None:
            raise InvalidRequest(
                "filters", "category: the page's category is the path; filter by brand, price or stock"
            )
        searcher = self.searcher
        if searcher is None:
            raise InvalidRequest("catalog", "is empty or the search index is not built yet")
        wanted = Filters(**{**(flt.model_dump() if flt else {}), "category": category})
        listing = self._listing(searcher, wanted)
        if not listing.ids:  # the filters left nothing, or there is no such category at all
            in_category = searcher.columns_.mask(Filters(category=category))
            if in_category is None or not in_category.any():
                raise NotFound("category", category)
        need = k * page
        order = None if sort == "relevance" else sort
        if order is not None:
            picked = price_first(listing.prices, order, need)
            cands = [Candidate(listing.ids[i], 0.0, {"sorted_by": order}) for i in picked]
        else:
            profile = self.online.profile(user)  # built once: both steps read it
            cands = self._featured(listing, profile, override, max(need * 2, 50))
            cands = self._surface_rerank(self._model("browse_ranker", override), "browse", cands, profile)
        return self._serve(
            "browse",
            cands,
            user=user,
            session_id=session_id,
            k=k,
            page=page,
            categories=tuple(parts),
            facets=listing.facets,
            total=len(listing.ids),
            override=override,
            order=order,
            category=" > ".join(parts),
            base_field=FEATURED_FIELD if order is None else None,
        )

    def top_categories(self) -> dict[str, int]:
        """Top-level categories and how many products each holds, largest first (a shop's
        navigation); recounted only after the catalog changed."""
        searcher = self.searcher
        if searcher is None:
            return {}
        cols = searcher.columns_
        cached = self._top_categories
        if cached is not None and cached[0] is cols and cached[1] == cols.generation:
            return cached[2]
        counts = cols.facets(np.flatnonzero(cols.present))["category"]
        self._top_categories = (cols, cols.generation, counts)
        return counts

    def _listing(self, searcher: HybridSearcher, wanted: Filters) -> CategoryListing:
        """The shopper-independent part of a category page, from a small LRU cache that a
        catalog change invalidates (the columns' generation is part of the key)."""
        cols = searcher.columns_
        key = (id(cols), cols.generation, wanted.model_dump_json())
        with self._listings_lock:
            listing = self._listings.get(key)
            if listing is not None and listing.source is cols:
                self._listings.move_to_end(key)
                return listing
        listing = build_listing(cols, searcher.ids_, wanted)
        with self._listings_lock:
            self._listings[key] = listing
            while len(self._listings) > LISTING_CACHE_SIZE:
                self._listings.popitem(last=False)
        return listing

    def _surface_rerank(
        self, ranker: LearnedRanker | None, surface: str, cands: list[Candidate], profile: UserProfile
    ) -> list[Candidate]:
        """`cands` (the featured head of a category page, or the home feed's model order)
        re-ordered by that surface's learned ranker, when one is active (trained from the
        surface's own clicks by the retraining loop); in-stock products stay ahead of
        out-of-stock ones, as in the order it re-ranks."""
        if ranker is None or not cands:
            return cands
        ctx = FeatureContext(
            self.online, self.products.get, profile=profile, surface=surface, item_vector=self.item_vector
        )
        serving = self.config.serving
        ranked = ranker.rerank(
            cands, ctx, max_promotion=serving.ranker_max_promotion, explain_top=serving.ranker_explain_top
        )
        stocked = [c for c in ranked if (p := self.products.get(c.item_id)) is not None and p.in_stock]
        if len(stocked) == len(ranked):
            return ranked
        # Served scores stay non-increasing down the list, so later stable re-sorts (rules) keep it.
        floor = min((c.score for c in stocked), default=0.0)
        held = {c.item_id for c in stocked}
        rest = [
            replace(c, score=min(c.score, floor) - OUT_OF_STOCK_PENALTY)
            for c in ranked
            if c.item_id not in held
        ]
        return stocked + rest

    def _featured(
        self, listing: CategoryListing, profile: UserProfile, override: ServingOverride | None, n: int
    ) -> list[Candidate]:
        """The `n` best of a category's products in the featured order (engine/browse.py)."""
        ids = listing.ids
        ranked = self._trending_snapshot()  # the same list object until the snapshot refreshes
        cached = listing.popularity
        if cached is not None and cached[0] is ranked:
            popularity = cached[1]
        else:
            trend = dict(ranked)
            popularity = np.array([trend.get(i, 0.0) for i in ids], dtype=np.float64)
            listing.popularity = (ranked, popularity)
        model = affinity = None
        if profile.is_known:
            affinity = affinity_scores(
                listing.brands,
                listing.leaves,
                profile.brand_affinity,
                profile.category_affinity,
                [i in profile.disliked for i in ids] if profile.disliked else np.zeros(len(ids), dtype=bool),
            )
            if self.recs is not None:
                bundle, _ = self._recommender(override)
                history = [bundle.items.get(i) for i in profile.recent_items if i in bundle.items]
                if history:
                    row = bundle.model.score([history])[0]
                    # within the category; items the model does not know (-inf) get 0
                    model = standardise(row[self._model_index(listing, bundle.items)])
        scores = featured_scores(
            popularity,
            listing.in_stock,
            model_z=model,
            model_weight=self.config.serving.browse_model_weight,
            affinity=affinity,
            affinity_weight=self.config.serving.browse_affinity_weight,
        )
        cands = []
        for i in best_first(scores, n):
            # featured_score: the learned category-page ranker's input, logged with the impression
            expl: dict[str, Any] = {"popularity": float(popularity[i]), FEATURED_FIELD: float(scores[i])}
            reason = "popular here" if popularity[i] > 0 else "in this category"
            if model is not None:
                expl["model_z"] = float(model[i])
                if model[i] > 0.5:  # clearly above the category's average for this shopper
                    reason = "picked for you"
            cands.append(Candidate(ids[i], float(scores[i]), expl, [reason]))
        return cands

    @staticmethod
    def _model_index(listing: CategoryListing, items: Any) -> np.ndarray:
        """Each listed product's index in the recommender's item table, cached on the listing."""
        cached = listing.model_index.get(id(items))
        if cached is not None and cached[0] is items:
            return cached[1]
        index = np.array([items.get(i) for i in listing.ids], dtype=np.int64)
        listing.model_index[id(items)] = (items, index)
        return index

    def _personal_boost(self, item_id: str, profile: UserProfile, expl: dict[str, Any]) -> float:
        weight = self.config.serving.personalization_weight
        product = self.products.get(item_id)
        if not weight or product is None or not profile.is_known:
            return 0.0
        cat = max((profile.category_affinity.get(c, 0.0) for c in product.category_path), default=0.0)
        brand = profile.brand_affinity.get(product.brand or "", 0.0)
        # Squash unbounded decayed counts into (-1, 1) so one heavy shopper cannot swamp relevance.
        affinity = math.tanh(0.2 * cat) * 0.7 + math.tanh(0.2 * brand) * 0.3
        if item_id in profile.disliked:
            affinity -= 1.0
        if affinity:
            expl["personal_affinity"] = affinity
        return weight * affinity

    def _query_ctr_lifts(self, query: str, item_ids: Sequence[str]) -> dict[str, float]:
        """Score lift per item from its click-through rate for this query (shown ≥ once)."""
        weight = self.config.serving.query_ctr_weight
        if not weight or not query:
            return {}
        baseline = self.online.config.ctr_prior_clicks / self.online.config.ctr_prior_impressions
        ctrs = self.online.query_item_ctrs(query, item_ids, min_shown=1.0)
        return {item: weight * math.tanh((ctr - baseline) * 10) for item, ctr in ctrs.items()}

    # ------------------------------------------------------------------ recommendations
    def _bundle(self) -> RecommenderBundle:
        if self.recs is None:
            raise InvalidRequest("catalog", "no recommender trained yet: import products and events")
        return self.recs

    def _surfaces_for(self, bundle: RecommenderBundle) -> Surfaces:
        """Surfaces over the bundle's item index, with text vectors from the search index."""
        ordered = [self.products.get(item_id) for item_id in bundle.items]
        titles = ["", *[p.title if p else "" for p in ordered]]
        category = np.array(["", *[(p.category or "") if p else "" for p in ordered]], dtype=object)
        known = [p for p in ordered if p is not None]
        text = self._text_vectors(known) if len(known) == len(ordered) else None
        # SASRec's frozen item table; models without one (item-kNN, EASE) leave it to co-views and text.
        table = getattr(bundle.model, "item_embeddings", None)
        model_emb = table() if callable(table) else None
        return Surfaces(
            meta=ItemMeta(title=titles, category=category),
            trending_scores=np.zeros(len(titles)),
            model=bundle.model,
            cooccurrence=bundle.covisit,
            bought_together_model=bundle.baskets,
            text_emb=text,
            model_emb=model_emb,
        )

    def _recommended(
        self, bundle: RecommenderBundle, recs: Sequence[Recommendation], detail: str
    ) -> list[Candidate]:
        return [
            Candidate(
                bundle.items.external(r.item), r.score, {detail: r.score, "model": bundle.kind}, [r.reason]
            )
            for r in recs
            if np.isfinite(r.score)
        ]

    def recommend(
        self,
        user_id: str | None,
        *,
        surface: str = "home",
        session_id: str | None = None,
        k: int | None = None,
        filters: Filters | Mapping[str, Any] | None = None,
        override: ServingOverride | None = None,
    ) -> ServedList:
        """Personalised feed from the shopper's recent history; trending for unknown shoppers.
        `override`: what an A/B variant serves instead (see `shoploop.engine.variants`)."""
        k = self.config.serving.default_k if k is None else k
        self._check_k(k)
        user = self._user(user_id)
        flt = self._filters(filters)
        bundle, surfaces = self._recommender(override)
        profile = self.online.profile(user)
        index = bundle.items
        history = [index.get(i) for i in profile.recent_items if i in index]
        if not history:
            return self.trending(k=k, user_id=user_id, session_id=session_id, filters=flt, surface=surface)
        recs = surfaces.home_feed(
            history,
            max(k * 4, 50),  # room for the live stock / filter check below
            purchased=[index.get(i) for i in profile.purchased if i in index],
            disliked=[index.get(i) for i in profile.disliked if i in index],
        )
        cands = self._eligible(self._recommended(bundle, recs, MODEL_FIELD), flt)
        ranker = self._model("home_ranker", override)
        if ranker is None:
            cands = self._discount_fatigue(cands, profile)
        else:  # it learned from the clicks how much being passed over counts (its "fatigue" input)
            cands = self._surface_rerank(ranker, surface, cands, profile)
        return self._serve(
            surface, cands, user=user, session_id=session_id, k=k, override=override, base_field=MODEL_FIELD
        )

    def _discount_fatigue(self, cands: list[Candidate], profile: UserProfile) -> list[Candidate]:
        """Move items this shopper keeps being shown without engaging down their feed.

        Each item's place becomes `model rank + step * fatigue`; the list's scores stay where
        they were (the item now at place j takes the j-th best score), so exploration, rules
        and the logged scores see a list that is still ordered by score.
        """
        step = self.config.serving.fatigue_rank_step
        if not step or not profile.fatigue or not cands:
            return cands
        scores = sorted((c.score for c in cands), reverse=True)
        keyed = []
        for rank, cand in enumerate(cands):
            tired = profile.fatigue.get(cand.item_id, 0.0)
            if tired > 0.0:
                cand.explanation["fatigue"] = round(tired, 3)
            keyed.append((rank + step * tired, rank, cand))
        keyed.sort(key=lambda entry: (entry[0], entry[1]))
        reordered = [cand for _, _, cand in keyed]
        for cand, score in zip(reordered, scores, strict=True):
            cand.score = score
        return reordered

    def similar(
        self, item_id: str, *, k: int | None = None, user_id: str | None = None, session_id: str | None = None
    ) -> ServedList:
        """Items like this one: co-view neighbours blended with text and model-embedding similarity."""
        return self._item_surface("similar", item_id, k, user_id, session_id)

    def bought_together(
        self, item_id: str, *, k: int | None = None, user_id: str | None = None, session_id: str | None = None
    ) -> ServedList:
        """Items shoppers bought with this one (same order, or the same shopper's purchases)."""
        return self._item_surface("bought_together", item_id, k, user_id, session_id)

    def _item_surface(
        self, surface: str, item_id: str, k: int | None, user_id: str | None, session_id: str | None
    ) -> ServedList:
        k = self.config.serving.default_k if k is None else k
        self._check_k(k)
        self._product(item_id)  # NotFound for unknown items, before any work
        bundle = self._bundle()
        index, pool = bundle.items.get(item_id), max(k * 3, 30)
        if surface == "similar":
            recs, detail = self.surfaces.similar_items(index, pool), "similarity"
        else:
            recs, detail = self.surfaces.bought_together(index, pool), "co_purchase"
        cands = self._eligible(self._recommended(bundle, recs, detail), None)
        user = self._user(user_id)
        return self._serve(surface, cands, user=user, session_id=session_id, k=k, anchor=item_id)

    def trending(
        self,
        *,
        k: int | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        filters: Filters | Mapping[str, Any] | None = None,
        surface: str = "trending",
    ) -> ServedList:
        """What is hot now: time-decayed clicks, carts and purchases, weighted by intent."""
        k = self.config.serving.default_k if k is None else k
        self._check_k(k)
        flt = self._filters(filters)
        wanted = max(k * 4, 50)  # room for exploration and merchandising rules
        cands: list[Candidate] = []
        for item, value in self._trending_snapshot():
            product = self.products.get(item)
            if product is None or not product.in_stock or (flt is not None and not _passes(product, flt)):
                continue
            where = f" in {product.category}" if product.category else ""
            cands.append(Candidate(item, value, {"trending_score": value}, [f"trending{where}"]))
            if len(cands) >= wanted:
                break
        if len(cands) < k:  # a new shop has no activity yet: fill with in-stock catalog order
            seen = {c.item_id for c in cands}
            fill = [p for p in self.products.values() if p.item_id not in seen and p.in_stock]
            cands += self._eligible(
                [Candidate(p.item_id, 0.0, {}, ["new in the shop"]) for p in fill[: k * 2]], flt
            )
        return self._serve(surface, cands, user=self._user(user_id), session_id=session_id, k=k)

    def _trending_snapshot(self) -> list[tuple[str, float]]:
        """Items ranked by decayed clicks + 3 carts + 5 purchases, recomputed at most every few seconds.

        Scoring walks every active item's counters, which at 50k items costs far more than a
        request may; trends move over minutes, so a short-lived snapshot loses nothing.
        """
        now = time.monotonic()
        cached = self._trending
        if cached is not None and now - cached[0] < self.config.serving.trending_refresh_seconds:
            return cached[1]
        score: dict[str, float] = {}
        for signal, weight in (("click", 1.0), ("cart", 3.0), ("purchase", 5.0)):
            for item, value in self.online.popularity(signal=signal).items():
                score[item] = score.get(item, 0.0) + weight * value
        ranked = heapq.nlargest(self.config.serving.trending_depth, score.items(), key=lambda kv: kv[1])
        self._trending = (now, ranked)
        return ranked

    def suggest(self, prefix: str, *, k: int = 8) -> list[Suggestion]:
        """Completions of what a shopper has typed so far (autocomplete), most useful first:
        queries other shoppers searched and found something with, then catalog phrases; the
        catalog's typo corrector rescues misspelt complete words. Not logged: it answers every
        keystroke, and the search it leads to is logged as usual."""
        if not isinstance(prefix, str):
            raise InvalidRequest("q", "must be a string")
        if len(prefix) > MAX_SUGGEST_CHARS:
            raise InvalidRequest("q", f"at most {MAX_SUGGEST_CHARS} characters")
        if not 1 <= k <= self.config.serving.max_k:
            raise InvalidRequest("k", f"must be between 1 and {self.config.serving.max_k}")
        searcher = self.searcher
        correct = (
            searcher.typo_.correct_token if searcher is not None and searcher.config.typo_correction else None
        )
        return self.suggester.suggest(prefix, k, correct=correct)

    def set_suggest_blocklist(self, text: str) -> tuple[str, ...]:
        """Replace the words and phrases autocomplete must never suggest (one a line; saved in
        the home); suggestions containing them disappear at once."""
        if not isinstance(text, str):
            raise InvalidRequest("terms", "must be a string")
        try:
            terms = self.suggest_blocklist.set(text)
        except ValueError as err:
            raise InvalidRequest("terms", str(err)) from None
        self.suggester.set_blocked(terms)
        return terms

    def _product(self, item_id: str) -> Product:
        product = self.products.get(item_id)
        if product is None:
            raise NotFound("item", item_id)
        return product

    def _eligible(self, cands: list[Candidate], flt: Filters | None) -> list[Candidate]:
        """Drop items no longer in the catalog, out of stock, or outside the filters."""
        out = []
        for c in cands:
            p = self.products.get(c.item_id)
            if p is None or not p.in_stock:
                continue
            if flt is not None and not _passes(p, flt):
                continue
            out.append(c)
        return out

    # ------------------------------------------------------------------ the common tail
    def _serve(
        self,
        surface: str,
        cands: list[Candidate],
        *,
        user: str | None,
        session_id: str | None,
        k: int,
        page: int = 1,
        query: str | None = None,
        categories: tuple[str, ...] = (),
        understood: dict[str, Any] | None = None,
        facets: dict[str, dict[str, int]] | None = None,
        total: int | None = None,
        anchor: str | None = None,
        override: ServingOverride | None = None,
        order: str | None = None,
        category: str | None = None,
        base_field: str | None = None,
    ) -> ServedList:
        """`order`: the order the shopper chose (e.g. "price_asc"); such a list keeps it, so
        boosts and buries (relevance tweaks) and exploration leave it alone; pins and hides apply.
        `base_field`: the explanation key of the score a surface ranker re-orders (the featured
        score, the model's score), logged with the list because it cannot be recomputed later."""
        request_id = uuid.uuid4().hex
        now = self.clock()
        ctx = RuleContext(surface=surface, query=query, categories=categories, now=now)
        rules = self.rules.all()
        if order is not None:
            rules = [r for r in rules if r.kind not in ("boost", "bury")]
        needed = {c.item_id: self.products[c.item_id] for c in cands if c.item_id in self.products}
        for rule in rules:
            if rule.kind == "pin" and rule.item_id in self.products:
                needed[rule.item_id] = self.products[rule.item_id]
        outcome = apply_rules(cands, rules, ctx, needed)
        ranked = outcome.items
        pinned = any(
            r["kind"] == "pin"
            for c in ranked[: self.exploration.reach]
            for r in c.explanation.get("rules", [])
        )
        propensities = np.ones(len(ranked))
        policy = "deterministic" if order is None else f"sorted:{order}"
        exploration_log: dict[str, Any] | None = None
        explore = (override is None or override.policy != "deterministic") and order is None
        if ranked and not pinned and page == 1 and explore:
            # Seeded by (engine seed, list number): the same traffic replayed against the same
            # engine explores identically, which simulations and regression tests rely on.
            with self._lock:
                self._explorations += 1
                draw = self._explorations
            rng = np.random.default_rng([self.config.seed, draw])
            cfg = self.exploration.config
            # The query's serving count is only read when the budget decays with it.
            servings = self.online.query_served(query) if query and cfg.budget_half_servings else None
            budget = cfg.budget_for(servings)
            choice = self.exploration.choose(np.array([c.score for c in ranked]), rng, budget=budget)
            ranked = [ranked[i] for i in choice.order]
            propensities = choice.propensities
            policy = choice.policy
            if choice.slot_probabilities is not None:  # the order was drawn at random
                # Log how, per shown shuffled slot: the item's rank in the ranker's order and
                # P(slot | exploring), so the examination curve can be estimated without bias
                # (`feedback.click_models.examination_from_randomisation`).
                n = min(len(choice.slot_probabilities), k)
                exploration_log = {
                    "ranks": [int(r) for r in choice.order[:n]],
                    "probabilities": [round(float(p), 6) for p in choice.slot_probabilities[:n]],
                    "full_support_ranks": self.exploration.full_support_ranks,
                }
            elif choice.probe is not None:  # one item below the page shown near the top
                rank, slot = choice.probe
                exploration_log = {"probe": {"rank": rank, "slot": slot}}
        start = (page - 1) * k
        shown = ranked[start : start + k]
        shown_p = propensities[start : start + k]
        items = tuple(
            ServedItem(
                item_id=c.item_id,
                position=start + n + 1,
                score=float(c.score) if np.isfinite(c.score) else 0.0,
                propensity=float(min(max(p, 1e-9), 1.0)),
                reasons=tuple(c.reasons),
                explanation=c.full_explanation(),
                **self._display(c.item_id),
            )
            for n, (c, p) in enumerate(zip(shown, shown_p, strict=True))
        )
        served = ServedList(
            request_id=request_id,
            surface=surface,
            items=items,
            policy=policy,
            explored=exploration_log is not None,
            model_version=self._served_versions(override),
            query=query,
            understood_query=understood,
            facets=facets or {},
            redirect=outcome.redirect,
            total_candidates=total if total is not None else len(ranked),
            sort=order,
            category=category,
        )
        if items:
            self._log_impression(served, user, session_id, now, anchor, exploration_log, base_field)
        return served

    def _display(self, item_id: str) -> dict[str, Any]:
        p = self.products.get(item_id)
        if p is None:
            return {}
        return {
            "title": p.title,
            "price": p.price,
            "category": p.category,
            "brand": p.brand,
            "in_stock": p.in_stock,
        }

    def _log_impression(
        self,
        served: ServedList,
        user: str | None,
        session_id: str | None,
        now: datetime,
        anchor: str | None,
        exploration: dict[str, Any] | None = None,
        base_field: str | None = None,
    ) -> None:
        context: dict[str, Any] = {"anchor_item": anchor} if anchor else {}
        if exploration is not None:
            context["explored"] = exploration
        if served.sort is not None:  # learning to rank leaves these out (training_data.join_logs)
            context["sort"] = served.sort
        if served.category is not None:  # a category page's category
            context["category"] = served.category
        if base_field is not None:  # a surface ranker's inputs cannot be recomputed later
            context[BASE_SCORES_KEY] = [_rounded(i.explanation.get(base_field)) for i in served.items]
            context[BASE_FIELD_KEY] = base_field
        event = ImpressionEvent(
            request_id=served.request_id,
            surface=served.surface,
            query=(served.query or "")[:1000] or None,
            items=tuple(
                ShownItem(item_id=i.item_id, position=i.position, score=i.score, propensity=i.propensity)
                for i in served.items
            ),
            policy=served.policy,
            model_version=served.model_version,
            user_id=user or ANONYMOUS,
            session_id=session_id,
            timestamp=now,
            context=context,
        )
        self.stores.events.append([event])
        self._observe(event)
        self._requests += 1

    # ------------------------------------------------------------------ feedback intake
    def ingest_events(self, rows: Sequence[Mapping[str, Any]]) -> list[RowOutcome]:
        """Validate, clean and store shopper events; accepted ones update online state at once."""
        outcomes = self.intake.submit(rows)  # pseudonymises shopper ids when the shop does
        flagged = self._forget_new_bots()
        for outcome in outcomes:
            if outcome.event is not None and outcome.event.user_id not in flagged:
                self._observe(outcome.event)
        return outcomes

    def _forget_new_bots(self) -> Mapping[str, str]:
        """Shoppers flagged as bots since the last look stop counting towards autocomplete's
        distinct-shopper rule: what they searched before the flag must not be pushed into every
        shopper's search box. Returns every flagged user."""
        flagged = self.stores.events.flagged_users()
        new = flagged.keys() - self._known_bots
        for user in new:
            self.suggester.forget_user(user)
        self._known_bots |= new
        return flagged

    # ------------------------------------------------------------------ catalog
    def upsert_products(self, products: Sequence[Product]) -> int:
        """Insert or replace products; search sees them on the next request, no restart."""
        with self._lock:
            version = self.stores.catalog.upsert(products)
            self.products.update((p.item_id, p) for p in products)
            if self.searcher is not None:
                self.searcher.upsert(products)
            self.suggester.upsert(products)
            self._catalog_version = version
        return version

    def delete_products(self, item_ids: Sequence[str]) -> int:
        with self._lock:
            version = self.stores.catalog.delete(item_ids)
            for i in item_ids:
                self.products.pop(i, None)
            if self.searcher is not None:
                self.searcher.delete(item_ids)
            self.suggester.delete(item_ids)
            self._catalog_version = version
        return version

    def get_product(self, item_id: str) -> Product:
        return self._product(item_id)

    # ------------------------------------------------------------------ other writers
    def sync_with_stores(self) -> dict[str, int]:
        """Pick up what another process wrote to this shop's home since the last look: catalog
        changes and shopper events (a `shoploop import` while the server runs, another server
        on the same home) and model promotions or rollbacks (the CLI, a retraining job).
        Shoppers whose events a retention purge erased (`shoploop retention apply`, or this
        server's own `RetentionJob`) have their state rebuilt from what the log still holds.
        Returns what changed: {"catalog": n items, "events": n applied, "purged_shoppers": n
        rebuilt, model: version (0 = rolled back to none)}.
        Servers call this every few seconds, so nothing written elsewhere needs a restart."""
        changed: dict[str, int] = {}
        if applied := self._events.follow():
            changed["events"] = applied
        # After the events: a rebuild reads the shopper's whole log, so an event followed later
        # would count twice in their profile.
        with self._purge_lock:
            self._purge_seq, purged = self.stores.events.purged_since(self._purge_seq)
        if purged and (rebuilt := self.refresh_shoppers(purged)):
            changed["purged_shoppers"] = rebuilt
        self._forget_new_bots()  # another process's import may have flagged some
        with self._lock:
            changes = self.stores.catalog.changes_since(self._catalog_version)
            if changes:
                latest = {c.item_id: c.op for c in changes}
                self.products.update(
                    self.stores.catalog.get_many([i for i, op in latest.items() if op == "upsert"])
                )
                for item_id in (i for i, op in latest.items() if op == "delete"):
                    self.products.pop(item_id, None)
                if self.searcher is not None:
                    _apply_to_searcher(self.searcher, changes, self.products)
                self.suggester.upsert(
                    self.products[i] for i, op in latest.items() if op == "upsert" and i in self.products
                )
                self.suggester.delete(i for i, op in latest.items() if op == "delete")
                self._catalog_version = max(c.version for c in changes)
                changed["catalog"] = len(latest)
        if self.rules.reload():  # written by `shoploop import algolia` or another server on this home
            changed["rules"] = 1
        if self.shop_synonyms.reload():  # edited by hand, or by another server on this home
            self._apply_synonyms()
            changed["synonyms"] = 1
        if self.suggest_blocklist.reload():
            self.suggester.set_blocked(self.suggest_blocklist.value)
            changed["suggest_blocklist"] = 1
        for name in ("search", "recommender", *OPTIONAL_MODELS):
            active = self.stores.registry.active(name)
            if active is not None and active.version != self.versions.get(name):
                self._activate(active)
                changed[name] = active.version
            elif active is None and name in OPTIONAL_MODELS and name in self.versions:
                self._deactivate(name)  # rolled back to none by another process
                changed[name] = 0
        return changed

    # ------------------------------------------------------------------ privacy
    def stored_user_id(self, user_id: str | None) -> str | None:
        """The id shoploop stores and keys state by for a shopper id as the shop sends it (its
        pseudonym when the shop pseudonymises ids); None for an empty id."""
        return self._user(user_id)

    def _required_user(self, user_id: str) -> str:
        user = self._user(user_id)
        if user is None:
            raise InvalidRequest("user_id", "must not be empty")
        return user

    def delete_user(self, user_id: str, *, experiments: ExperimentStore | None = None) -> dict[str, Any]:
        """Erase a shopper: events, quarantined rows naming them, derived online state, and
        their A/B exposures when the caller passes the experiment store."""
        user = self._required_user(user_id)
        events = self.stores.events.delete_user(user)
        quarantined = [
            r.id for r in quarantined_rows_naming(self.stores.quarantine.list(kind="event"), user, user_id)
        ]
        removed_q = self.stores.quarantine.remove(quarantined) if quarantined else 0
        state = self.online.delete_user(user)
        state["suggestion_queries"] = self.suggester.forget_user(user)
        receipt: dict[str, Any] = {
            "user_id": user_id,
            "events_deleted": events,
            "quarantined_rows_deleted": removed_q,
            "online_state": state,
            "note": "models are retrained from the log, so the next retrain no longer sees this shopper",
        }
        if experiments is not None:
            receipt["experiment_exposures_deleted"] = experiments.delete_user(user)
        return receipt

    def refresh_shoppers(self, stored_user_ids: Iterable[str]) -> int:
        """Rebuild the online state of shoppers (by stored id) from the events the log still
        holds, after a retention purge took some of theirs, and take them out of autocomplete's
        distinct-shopper counts for queries they no longer searched; returns how many were
        rebuilt. Counters over all shoppers are left alone: they name nobody. `sync_with_stores`
        calls it for the shoppers in the log's purge record, whichever process purged."""
        n = 0
        for user in stored_user_ids:
            if user and user != ANONYMOUS_USER:
                remaining = list(self.stores.events.scan(user_id=user))
                self.online.rebuild_user(user, remaining)
                self.suggester.forget_purged_searches(user, remaining)
                n += 1
        return n

    def export_user(self, user_id: str, *, experiments: ExperimentStore | None = None) -> dict[str, Any]:
        """Everything shoploop holds that names a shopper (right of access / portability), as
        one JSON-ready document; `shoploop.privacy.access` lists what is in it and what is not."""
        return shopper_document_from_stores(
            self.stores,
            user_id,
            stored_as=self._required_user(user_id),
            now=self.clock(),
            experiments=experiments,
            online=self.online,
            suggester=self.suggester,
        )

    # ------------------------------------------------------------------ synonyms
    def synonyms(self) -> dict[str, Any]:
        """The shop's own synonym rules (text) and how many rules it and the defaults hold."""
        own = self.shop_synonyms.value
        searcher = self.searcher
        base = searcher.base_synonyms_ if searcher is not None else None
        return {
            "rules": self.shop_synonyms.text,
            "groups": len(own.groups),
            "rewrites": len(own.rewrites),
            "one_way": len(own.one_way),
            "default_groups": len(base.groups) if base is not None else None,
            "default_rewrites": len(base.rewrites) if base is not None else None,
        }

    def set_synonyms(self, text: str) -> dict[str, Any]:
        """Replace the shop's own synonym rules (saved in the home) and apply them from the next
        search on. A line that is not a rule is refused with its number; nothing changes then."""
        if not isinstance(text, str):
            raise InvalidRequest("rules", "must be a string")
        try:
            self.shop_synonyms.set(text)
        except ValueError as err:
            raise InvalidRequest("rules", str(err)) from None
        self._apply_synonyms()
        return self.synonyms()

    def _apply_synonyms(self) -> None:
        table = self.shop_synonyms.value
        with self._lock:
            if self.searcher is not None:
                self.searcher.set_shop_synonyms(table)

    # ------------------------------------------------------------------ analytics
    def search_queries(self, days: float | None = 30.0) -> list[QueryRow]:
        """Per-query search analytics over the last `days` (None = all time), most searched first."""
        if days is not None and not days > 0:
            raise InvalidRequest("days", f"must be positive, got {days}")
        return query_report_from_log(self.stores.events, days=days, now=self.clock())

    # ------------------------------------------------------------------ models
    def list_models(self) -> list[ModelVersion]:
        return self.stores.registry.versions()

    def model_decisions(
        self, name: str | None = None, *, actions: Sequence[str] | None = None, limit: int = 50
    ) -> list[RegistryDecision]:
        """The registry's audit trail, newest first: every registration, promotion, rejection,
        retirement and rollback with its reason and the evidence it was taken on (a gate's
        metrics). `actions` keeps only those kinds; at most `limit` entries."""
        try:
            return recent_decisions(self.stores.registry, name, actions=actions, limit=limit)
        except BadTrailQuery as err:
            raise InvalidRequest(err.field, err.message) from None

    def promote(self, name: str, version: int, *, reason: str = "manual promotion") -> ModelVersion:
        promoted = self.stores.registry.promote(name, version, reason=reason)
        self._activate(promoted)
        return promoted

    def rollback(self, name: str, *, reason: str = "manual rollback") -> ModelVersion:
        """Re-activate the previous version of `name`. A re-ranker whose first version is active
        rolls back to none: lists are served as they were before it (the returned version is
        the one switched off, now rejected)."""
        optional = name in OPTIONAL_MODELS
        restored = self.stores.registry.rollback(name, reason=reason, to_none=optional)
        if restored.status == "active":
            self._activate(restored)
        else:
            self._deactivate(name)
        return restored

    def _deactivate(self, name: str) -> None:
        """Serve without the optional model `name` (its registry has no active version)."""
        with self._lock:
            setattr(self, name, None)
            if name == "ranker":  # live impressions are counted raw again, as before any ranker
                self.online.set_examination(None)
            self.versions.pop(name, None)

    # ------------------------------------------------------------------ operations
    def health(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "products": len(self.products),
            "events": len(self.stores.events),
            "models": dict(self.versions),
            "served_lists": self._requests,
            "online": self.online.stats(),
            "suggestions": self.suggester.stats(),
        }


def _text_vector(searcher: HybridSearcher, item_id: str) -> np.ndarray | None:
    """`item_id`'s row of the searcher's dense (L2-normalised) vectors; None without a dense
    index or a vector for it."""
    if searcher.dense_ is None:
        return None
    key = searcher.key_of_.get(item_id)
    vectors = searcher.dense_.vectors_
    return vectors[key] if key is not None and key < len(vectors) else None


def _rounded(value: Any) -> float | None:
    """A logged feature value: six decimals are far finer than the ranker's splits, and keep
    each category page's impression a few hundred bytes smaller."""
    return round(float(value), 6) if isinstance(value, int | float) else None


def _apply_to_searcher(
    searcher: HybridSearcher, changes: Sequence[CatalogChange], products: Mapping[str, Product]
) -> None:
    """Bring `searcher` up to date with catalog `changes` (the last change per item wins);
    upserted products are read from `products`, the engine's copy of the catalog."""
    latest = {c.item_id: c.op for c in changes}
    upserts = [products[i] for i, op in latest.items() if op == "upsert" and i in products]
    deletes = [i for i, op in latest.items() if op == "delete"]
    if upserts:
        searcher.upsert(upserts)
    if deletes:
        searcher.delete(deletes)


def _hit_detail(hit: SearchHit) -> Callable[[], dict[str, Any]]:
    return lambda: hit.explanation


def _check_order(sort: str) -> None:
    if sort not in LIST_ORDERS:
        raise InvalidRequest("sort", f"must be one of {', '.join(LIST_ORDERS)}, got {str(sort)[:40]!r}")


LISTING_CACHE_SIZE = 128  # category pages x filter combinations kept (each ~1 MB at 10k products)


def by_price(cands: list[Candidate], products: Mapping[str, Product], order: str) -> list[Candidate]:
    """`cands` by price (`order` "price_asc" or "price_desc"); unpriced products last, and equal
    prices keep their relevance order (browse.price_first's rule)."""
    prices = [getattr(products.get(c.item_id), "price", None) for c in cands]
    ranked = [cands[i] for i in price_first(np.array(prices, dtype=np.float64), order, len(cands))]
    for c in ranked:
        c.explanation["sorted_by"] = order
    return ranked


def _passes(p: Product, flt: Filters) -> bool:
    if flt.category:
        wanted = [part.strip().lower() for part in flt.category.split(">")]
        if [c.lower() for c in p.category_path[: len(wanted)]] != wanted:
            return False
    if flt.brand and (p.brand or "").strip().casefold() not in flt.brand_keys():
        return False
    if flt.in_stock is not None and p.in_stock != flt.in_stock:
        return False
    if flt.min_price is not None and (p.price is None or p.price < flt.min_price):
        return False
    return not (flt.max_price is not None and (p.price is None or p.price > flt.max_price))
