"""`HybridSearcher`: query understanding -> BM25 + dense candidates -> fusion -> filters/facets.

Pipeline for one `search(query)` (each step is reported in `UnderstoodQuery`):

1. validate (empty / whitespace-only -> `InvalidQuery` naming the `query` field) and truncate to
   `max_query_chars` (flagged as `truncated`);
2. parse price phrases into filters (removed from the text) and size phrases (kept);
3. normalise + typo-correct unknown tokens against the catalog vocabulary; apply synonyms;
4. BM25 scores for the whole catalog (one sparse sum) and dense ANN top-`candidates`,
   both restricted by the filter mask *before* top-k;
5. every candidate of either list gets both exact scores (BM25 from the full score vector,
   cosine from the stored vector), then fusion (RRF or normalised blend) + category-intent prior;
6. facets over all filtered candidates; explanation per returned item.

Products live in a key space of dense ints (one per item id, kept across delete/re-upsert) that
all components share, so a filter is one boolean mask.
"""

from __future__ import annotations

import functools
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shoploop.domain.products import Product
from shoploop.retrieval.bm25 import BM25Index
from shoploop.retrieval.category_intent import CategoryIntentModel
from shoploop.retrieval.config import HybridConfig
from shoploop.retrieval.dense import DenseIndex
from shoploop.retrieval.filters import CatalogColumns, Filters
from shoploop.retrieval.fusion import Candidates, FusionConfig, fit_fusion_weights, fuse
from shoploop.retrieval.query_understanding import (
    SynonymTable,
    TypoCorrector,
    parse_phrases,
    token_counts,
)
from shoploop.text.encoder import EncoderConfig, TextEncoder, encode_with_cache, text_hash
from shoploop.text.normalize import STOPWORDS, normalize, stem_tokens, tokenize

__all__ = ["HybridSearcher", "InvalidQuery", "SearchHit", "SearchResult", "UnderstoodQuery"]


class InvalidQuery(ValueError):  # noqa: N818 - the agreed public name
    """A query the searcher cannot run; `field` names the offending input (for a 4xx response)."""

    def __init__(self, message: str, field: str = "query") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


@dataclass
class UnderstoodQuery:
    original: str
    truncated: bool
    normalized: str
    corrected: str
    corrections: dict[str, str]
    synonyms: list[str]
    filters: dict[str, Any]  # parsed from the text (price range)
    sizes: list[dict[str, Any]]
    phrases: list[str]
    predicted_categories: list[tuple[str, float]]
    bm25_tokens: list[str]
    dense_text: str
    notes: list[str] = field(default_factory=list)


class SearchHit:
    """One result. `explanation` (matched terms, each retriever's rank and score) is built on
    first read: a search returns ~50 hits as re-ranking headroom while a page shows ~20, and
    explaining every hit up front was ~5% of a served search's interpreter time."""

    __slots__ = ("_explain", "_explanation", "item_id", "score")

    def __init__(self, item_id: str, score: float, explain: Callable[[], dict[str, Any]]) -> None:
        self.item_id = item_id
        self.score = score
        self._explain = explain
        self._explanation: dict[str, Any] | None = None

    @property
    def explanation(self) -> dict[str, Any]:
        if self._explanation is None:
            self._explanation = self._explain()
        return self._explanation

    def __repr__(self) -> str:
        return f"SearchHit({self.item_id!r}, {self.score!r})"


@dataclass
class SearchResult:
    items: list[SearchHit]
    facets: dict[str, dict[str, int]]
    understood: UnderstoodQuery
    n_candidates: int
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class HybridSearcher:
    """BM25 + dense hybrid product search with query understanding; see module docstring."""

    def __init__(
        self,
        config: HybridConfig = HybridConfig(),
        *,
        encoder: TextEncoder | None = None,
        query_encoder: TextEncoder | None = None,
    ) -> None:
        # Encoders are dependencies, not learned state: tests and benchmarks share one instance.
        self.config = config
        self._encoder = encoder
        self._query_encoder = query_encoder
        # Encoders are built lazily, and a server calls in from many threads at once: without
        # the lock, the first burst of queries each built its own ONNX session (seconds of CPU
        # apiece) while the burst waited (benchmarks/serving.py).
        self._encoder_lock = threading.RLock()

    # ------------------------------------------------------------------ encoders
    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            with self._encoder_lock:
                if self._encoder is None:
                    self._encoder = TextEncoder(self.config.encoder)
        return self._encoder

    @property
    def query_encoder(self) -> TextEncoder:
        if self._query_encoder is None:
            with self._encoder_lock:
                return self._build_query_encoder()
        return self._query_encoder

    def warm_up(self) -> None:
        """Build the query encoder and run one query through it, so the first shopper's search
        does not pay for loading a model (servers call this before taking traffic)."""
        if self.config.use_dense and getattr(self, "dense_", None) is not None:
            self.query_encoder.encode_query("warm up")

    def _build_query_encoder(self) -> TextEncoder:
        if self._query_encoder is None:
            # "auto" looks at the product encoder actually in use: an injected one (tests,
            # shared instances) may not be the packaged MiniLM the int8 build is a twin of.
            injected = self._encoder
            if injected is not None and not isinstance(injected, TextEncoder):
                self._query_encoder = injected  # a stand-in encoder: queries go through it too
                return injected
            in_use = injected.config if injected is not None else self.config.encoder
            backend = replace(self.config, encoder=in_use).resolved_query_backend()
            if backend == in_use.backend:
                self._query_encoder = self.encoder
            else:
                # One ORT thread: single queries do not parallelise (see EncoderConfig.query_threads).
                self._query_encoder = TextEncoder(replace(in_use, backend=backend, num_threads=1))
        return self._query_encoder

    def _encode_products(self, texts: Sequence[str]) -> np.ndarray:
        cache = Path(self.config.embedding_cache_dir) if self.config.embedding_cache_dir else None
        return encode_with_cache(self.encoder, texts, cache, progress=len(texts) > 1000)

    # ------------------------------------------------------------------ texts
    def _bm25_text(self, p: Product) -> str:
        return " ".join([p.title] * max(self.config.title_repeat - 1, 0) + [p.text()])

    @staticmethod
    def _dense_text(p: Product) -> str:
        return p.text()

    # ------------------------------------------------------------------ fitting
    def fit(self, products: Iterable[Product], *, vectors: np.ndarray | None = None) -> HybridSearcher:
        """Index `products` (last one wins on duplicate ids). `vectors`: precomputed product vectors."""
        prods = list({p.item_id: p for p in products}.values()) if vectors is None else list(products)
        self.ids_: list[str] = [p.item_id for p in prods]
        self.key_of_: dict[str, int] = {pid: i for i, pid in enumerate(self.ids_)}
        if len(self.key_of_) != len(self.ids_):
            raise ValueError("products: duplicate item_id while `vectors` were given")
        self.products_: dict[int, Product] = dict(enumerate(prods))
        self.columns_ = CatalogColumns()
        for key, p in enumerate(prods):
            self.columns_.set(key, p)
        keys = list(range(len(prods)))
        self.bm25_ = BM25Index(self.config.bm25).fit(keys, [self._bm25_text(p) for p in prods])
        self.base_synonyms_ = self.synonyms_ = self._load_synonyms()
        self.typo_ = TypoCorrector(self.config.typo).fit(
            token_counts(p.text() for p in prods), protected=self.synonyms_.vocabulary()
        )
        self.dense_: DenseIndex | None = None
        if self.config.use_dense:
            texts = [self._dense_text(p) for p in prods]
            vecs = self._encode_products(texts) if vectors is None else np.asarray(vectors, dtype=np.float32)
            self.dense_ = DenseIndex(self.config.dense).fit(keys, vecs, [text_hash(t) for t in texts])
        self.intent_: CategoryIntentModel | None = None
        self.fusion_: FusionConfig = self._default_fusion()
        return self

    def _default_fusion(self) -> FusionConfig:
        n = 2 if self.config.use_dense else 1
        f = self.config.fusion
        return f if len(f.weights) == n else replace(f, weights=(1.0,) * n)

    def set_shop_synonyms(self, table: SynonymTable) -> None:
        """Apply a shop's own rules on top of the configured ones, from the next query on. Their
        words count as known, so typo correction never "corrects" them into something else."""
        merged = self.base_synonyms_.merged(table)
        self.typo_.known_ = set(self.typo_.counts_) | merged.vocabulary()
        self.synonyms_ = merged

    def _load_synonyms(self) -> SynonymTable:
        if not self.config.synonyms:
            return SynonymTable()
        if self.config.synonyms_path:
            return SynonymTable.from_file(Path(self.config.synonyms_path))
        return SynonymTable.default()

    def _category_label(self, path: Sequence[str]) -> str | None:
        if not path:
            return None
        return " > ".join(path[: self.config.intent_level])

    def fit_intent(
        self, queries: Sequence[str], item_ids: Sequence[str], weights: Sequence[float] | None = None
    ) -> HybridSearcher:
        """Train the category-intent model from (query, judged/clicked item) pairs."""
        qs, cats, ws = [], [], []
        for i, (q, pid) in enumerate(zip(queries, item_ids, strict=True)):
            key = self.key_of_.get(pid)
            if key is None:
                continue
            label = self._category_label(self.columns_.category[key])
            if label is None:
                continue
            qs.append(q)
            cats.append(label)
            ws.append(1.0 if weights is None else float(weights[i]))
        if not qs:
            raise ValueError("item_ids: none of the items is in the catalog with a category")
        self.intent_ = CategoryIntentModel(self.config.intent).fit(qs, cats, ws)
        if self.fusion_.intent_weight == 0.0:
            scale = 1.0 / 60.0 if self.fusion_.method == "rrf" else 0.3
            self.fusion_ = replace(self.fusion_, intent_weight=scale)
        return self

    def fit_fusion(
        self,
        queries: Sequence[str],
        gains: Sequence[Mapping[str, float]],
        *,
        candidates: int = 200,
        **grid: Any,
    ) -> float:
        """Learn fusion method + weights on judged queries (gain per item id). Returns training NDCG@10."""
        cands, key_gains = [], []
        for q, g in zip(queries, gains, strict=True):
            try:
                _, c, _ = self.candidates(q, candidates=candidates)
            except InvalidQuery:
                continue
            cands.append(c)
            key_gains.append({self.key_of_[pid]: v for pid, v in g.items() if pid in self.key_of_})
        if self.intent_ is None:
            grid.setdefault("intent_grid", (0.0,))
        else:
            grid.setdefault("intent_grid", (0.0, 0.1, 0.2, 0.3, 0.5, 0.8))
        cfg, score = fit_fusion_weights(cands, key_gains, **grid)
        self.fusion_ = replace(cfg, rrf_k=self.fusion_.rrf_k)
        return score

    # ------------------------------------------------------------------ incremental updates
    def upsert(self, products: Iterable[Product]) -> None:
        """Add or replace products without a rebuild; unchanged texts are not re-encoded."""
        prods = list({p.item_id: p for p in products}.values())
        keys: list[int] = []
        for p in prods:
            key = self.key_of_.get(p.item_id)
            if key is None:
                key = len(self.ids_)
                self.ids_.append(p.item_id)
                self.key_of_[p.item_id] = key
            keys.append(key)
            self.products_[key] = p
            self.columns_.set(key, p)
        self.bm25_.upsert(keys, [self._bm25_text(p) for p in prods])
        self.typo_.add(token_counts(p.text() for p in prods))
        if self.dense_ is not None:
            texts = [self._dense_text(p) for p in prods]
            hashes = [text_hash(t) for t in texts]
            todo = [
                i
                for i, (k, h) in enumerate(zip(keys, hashes, strict=True))
                if self.dense_.needs_encoding(k, h)
            ]
            if todo:
                vecs = self._encode_products([texts[i] for i in todo])
                self.dense_.upsert([keys[i] for i in todo], vecs, [hashes[i] for i in todo])
            self.n_encoded_last_upsert_ = len(todo)

    def delete(self, item_ids: Iterable[str]) -> None:
        keys = [self.key_of_[i] for i in item_ids if i in self.key_of_ and self.key_of_[i] in self.products_]
        self.bm25_.delete(keys)
        if self.dense_ is not None:
            self.dense_.delete(keys)
        for k in keys:
            self.columns_.remove(k)
            self.products_.pop(k, None)

    def __len__(self) -> int:
        return len(self.products_)

    # ------------------------------------------------------------------ query understanding
    def understand(self, query: str) -> UnderstoodQuery:
        if not isinstance(query, str):
            raise InvalidQuery(f"must be a string, got {type(query).__name__}")
        if not query.strip():
            raise InvalidQuery("must contain at least one non-space character")
        truncated = len(query) > self.config.max_query_chars
        q = query[: self.config.max_query_chars] if truncated else query
        parsed = parse_phrases(q)
        tokens = tokenize(parsed.text)
        corrections: dict[str, str] = {}
        if self.config.typo_correction:
            tokens, corrections = self.typo_.correct(tokens)
        tokens, expansion, applied = self.synonyms_.apply(tokens)
        # Compound joining: "deck over" also matches the catalog's "DeckOver", "dish washer" its
        # "dishwasher" — only when the joined word is a catalog word (seen at least twice).
        for a, b in itertools.pairwise(tokens):
            joined = a + b
            if a.isalpha() and b.isalpha() and self.typo_.counts_.get(joined, 0) >= 2:
                expansion.append(joined)
                applied.append(f"{a} {b} ~ {joined}")
        stop = STOPWORDS if self.config.bm25.remove_stopwords else frozenset()
        bm25_toks = [t for t in tokens + expansion if t not in stop]
        if self.config.bm25.stem:
            bm25_toks = stem_tokens(bm25_toks)
        corrected = " ".join(tokens)
        predicted: list[tuple[str, float]] = []
        if self.intent_ is not None and corrected:
            predicted = self.intent_.predict(corrected, top=self.config.intent_top)
        filters = {}
        if parsed.min_price is not None:
            filters["min_price"] = parsed.min_price
        if parsed.max_price is not None:
            filters["max_price"] = parsed.max_price
        return UnderstoodQuery(
            original=query if not truncated else query[: self.config.max_query_chars] + "…",
            truncated=truncated,
            normalized=normalize(parsed.text),
            corrected=corrected,
            corrections=corrections,
            synonyms=applied,
            filters=filters,
            sizes=[asdict(s) for s in parsed.sizes],
            phrases=list(parsed.matched),
            predicted_categories=predicted,
            bm25_tokens=bm25_toks,
            dense_text=corrected or normalize(q),
        )

    # ------------------------------------------------------------------ retrieval
    def _prior(self, keys: np.ndarray, predicted: Sequence[tuple[str, float]]) -> np.ndarray:
        prior = np.zeros(len(keys))
        if not predicted:
            return prior
        probs = dict(predicted)
        for i, k in enumerate(keys.tolist()):
            label = self._category_label(self.columns_.category[k])
            if label is not None:
                prior[i] = probs.get(label, 0.0)
        return prior

    def candidates(
        self, query: str, *, filters: Filters | None = None, candidates: int = 200
    ) -> tuple[UnderstoodQuery, Candidates, dict[str, float]]:
        """Understood query, the candidate set with every retriever's score, and stage timings (ms)."""
        t0 = time.perf_counter()
        uq = self.understand(query)
        t1 = time.perf_counter()
        parsed = Filters(**uq.filters) if uq.filters else None
        if parsed is not None and not np.isfinite(self.columns_.price).any():
            # A catalog without prices would return nothing for "under $50": report, do not apply.
            uq.notes.append(f"price filter {uq.filters} ignored: the catalog has no prices")
            uq.filters = {}
            parsed = None
        eff = filters.merged(parsed) if filters is not None else parsed
        n_keys = len(self.ids_)
        mask = self.columns_.mask(eff)
        live = self.columns_.present if mask is None else mask

        bm25_raw = (
            self.bm25_.score_all(uq.bm25_tokens, n_keys) if uq.bm25_tokens else np.zeros(n_keys, np.float32)
        )
        bm25_all = np.where(live[:n_keys], bm25_raw, 0.0)
        b_keys = _top_positive(bm25_all, candidates)
        t2 = time.perf_counter()

        retrievers: tuple[str, ...] = ("bm25",)
        d_keys = np.zeros(0, dtype=np.int64)
        qvec = None
        if self.dense_ is not None:
            retrievers = ("bm25", "dense")
            qvec = self.query_encoder.encode_query(uq.dense_text)
            d_keys, _ = self.dense_.search(qvec, candidates, allow=mask)
        t3 = time.perf_counter()

        keys = np.unique(np.concatenate([b_keys, d_keys]).astype(np.int64))
        scores = np.zeros((len(keys), len(retrievers)), dtype=np.float64)
        ranks = np.zeros((len(keys), len(retrievers)), dtype=np.float64)
        pos = {int(k): i for i, k in enumerate(keys.tolist())}
        scores[:, 0] = bm25_all[keys]
        for r, k in enumerate(b_keys.tolist(), 1):
            ranks[pos[k], 0] = r
        if qvec is not None:
            scores[:, 1] = self.dense_.scores(qvec, keys)
            for r, k in enumerate(d_keys.tolist(), 1):
                ranks[pos[k], 1] = r
        cands = Candidates(keys, scores, ranks, retrievers, self._prior(keys, uq.predicted_categories))
        # Disjunctive facets: a brand or top-level category the shopper picked is counted as if
        # it were not, so the facet still shows what the other brands / categories would give.
        for name in ("brand", "category"):
            if eff is not None and getattr(eff, name) is not None:
                cands.facet_keys[name] = self._keys_without(name, eff, bm25_raw, qvec, candidates)
        t4 = time.perf_counter()
        timings = {
            "understand": (t1 - t0) * 1e3,
            "bm25": (t2 - t1) * 1e3,
            "dense": (t3 - t2) * 1e3,
            "merge": (t4 - t3) * 1e3,
        }
        return uq, cands, timings

    def _keys_without(
        self, name: str, eff: Filters, bm25_raw: np.ndarray, qvec: np.ndarray | None, candidates: int
    ) -> np.ndarray:
        """The candidate keys the same query finds with every filter but `name` ("brand" or
        "category"): that facet is counted over these, so a shopper who ticked one brand still
        sees how many matches the others have (disjunctive faceting). Another pass of each
        retriever over the same scores and query vector, paid only by searches filtered by it."""
        mask = self.columns_.mask(eff.model_copy(update={name: None}))
        live = self.columns_.present if mask is None else mask
        keys = [_top_positive(np.where(live[: len(bm25_raw)], bm25_raw, 0.0), candidates)]
        if qvec is not None and self.dense_ is not None:
            keys.append(self.dense_.search(qvec, candidates, allow=mask)[0])
        return np.unique(np.concatenate(keys).astype(np.int64))

    def search(
        self, query: str, *, filters: Filters | None = None, k: int = 20, candidates: int = 200
    ) -> SearchResult:
        if k < 1:
            raise InvalidQuery("must be >= 1", field="k")
        uq, c, timings = self.candidates(query, filters=filters, candidates=max(candidates, k))
        t0 = time.perf_counter()
        fused = fuse(c, self.fusion_)
        order = np.argsort(-fused, kind="stable")
        facets = self.columns_.facets(c.keys)
        for name, keys in c.facet_keys.items():
            facets[name] = self.columns_.facets(keys)[name]
        qset = set(uq.bm25_tokens)
        hits = [
            SearchHit(
                self.ids_[int(c.keys[i])], float(fused[i]), functools.partial(self._explain_hit, c, i, qset)
            )
            for i in order[:k].tolist()
        ]
        timings["fuse"] = (time.perf_counter() - t0) * 1e3
        return SearchResult(hits, facets, uq, len(c.keys), timings)

    def _explain_hit(self, c: Candidates, i: int, qset: set[str]) -> dict[str, Any]:
        key = int(c.keys[i])
        found = {
            name: {"rank": int(c.ranks[i, r]), "score": float(c.scores[i, r])}
            for r, name in enumerate(c.retrievers)
            if c.ranks[i, r] > 0
        }
        return {
            "matched_terms": self.bm25_.matched_terms(key, qset),
            "retrievers": found,
            "scores": {name: float(c.scores[i, r]) for r, name in enumerate(c.retrievers)},
            "category_boost": float(self.fusion_.intent_weight * c.prior[i]) if len(c.prior) else 0.0,
        }

    def score_items(self, query: str, item_ids: Sequence[str]) -> np.ndarray:
        """Fused scores for given items (e.g. re-ranking a judged pool); unknown/deleted items get -inf.

        Every item gets both exact retriever scores; ranks are full-catalog ranks (1 + number of
        live products scoring higher), so RRF behaves as if the item had been retrieved there.
        """
        uq = self.understand(query)
        n_keys = len(self.ids_)
        known = [
            i for i, pid in enumerate(item_ids) if pid in self.key_of_ and self.key_of_[pid] in self.products_
        ]
        out = np.full(len(item_ids), -np.inf)
        if not known:
            return out
        keys = np.asarray([self.key_of_[item_ids[i]] for i in known], dtype=np.int64)
        live = self.columns_.present[:n_keys]
        retrievers: tuple[str, ...] = ("bm25",) if self.dense_ is None else ("bm25", "dense")
        scores = np.zeros((len(keys), len(retrievers)))
        ranks = np.zeros_like(scores)
        bm = self.bm25_.score_all(uq.bm25_tokens, n_keys) if uq.bm25_tokens else np.zeros(n_keys, np.float32)
        bm = np.where(live, bm, -np.inf)
        scores[:, 0] = bm[keys]
        ranks[:, 0] = 1 + (bm[None, :] > bm[keys][:, None]).sum(axis=1)
        if self.dense_ is not None:
            q = self.query_encoder.encode_query(uq.dense_text)
            allk = np.flatnonzero(self.dense_.present_[:n_keys])
            full = self.dense_.scores(q, allk)
            scores[:, 1] = self.dense_.scores(q, keys)
            ranks[:, 1] = 1 + (full[None, :] > scores[:, 1][:, None]).sum(axis=1)
        c = Candidates(keys, scores, ranks, retrievers, self._prior(keys, uq.predicted_categories))
        out[known] = fuse(c, self.fusion_)
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "config": self.config.to_dict(),
            "ids": self.ids_,
            "fusion": asdict(self.fusion_),
            "has_intent": self.intent_ is not None,
            "has_dense": self.dense_ is not None,
        }
        (directory / "searcher.json").write_text(json.dumps(meta))
        with (directory / "products.jsonl").open("w", encoding="utf-8") as fh:
            for key, p in self.products_.items():
                fh.write(json.dumps({"key": key, "product": p.model_dump(mode="json")}) + "\n")
        (directory / "typo.json").write_text(json.dumps(self.typo_.to_json()))
        self.bm25_.save(directory / "bm25")
        if self.dense_ is not None:
            self.dense_.save(directory / "dense")
        if self.intent_ is not None:
            self.intent_.save(directory / "intent")

    @staticmethod
    def _resolved_config(directory: Path, meta: dict[str, Any]) -> HybridConfig:
        # A fine-tuned encoder saved inside the index directory is named relative to it, so the
        # index stays self-contained when moved (engine.search_finetune).
        config = HybridConfig.from_dict(meta["config"])
        path = config.encoder.model_path
        if path and not Path(path).is_absolute() and (directory / path).is_dir():
            config = replace(
                config, encoder=replace(config.encoder, model_path=str((directory / path).resolve()))
            )
        return config

    @classmethod
    def load(
        cls,
        directory: Path,
        *,
        encoder: TextEncoder | None = None,
        query_encoder: TextEncoder | None = None,
        query_backend: Literal["saved", "auto", "torch", "onnx-int8"] | None = "saved",
        share_products: Mapping[str, Product] | None = None,
        encoder_built_for: EncoderConfig | None = None,
    ) -> HybridSearcher:
        """Load a saved index. `query_backend` (if given) replaces the saved one: how queries
        are encoded is a serving choice, not part of the index. `share_products` (the caller's
        catalog): saved products equal to the caller's are not kept twice in memory.
        `encoder_built_for`: the config `encoder` was built from; the encoder is then used only
        if the index was built with the same one (a click-trained index brings its own)."""
        directory = Path(directory)
        meta = json.loads((directory / "searcher.json").read_text())
        config = cls._resolved_config(directory, meta)
        if query_backend != "saved":
            config = replace(config, query_backend=query_backend)
        if encoder_built_for is not None and encoder_built_for != config.encoder:
            encoder = None
        self = cls(config, encoder=encoder, query_encoder=query_encoder)
        self.ids_ = list(meta["ids"])
        self.key_of_ = {pid: i for i, pid in enumerate(self.ids_)}
        self.products_ = {}
        self.columns_ = CatalogColumns()
        with (directory / "products.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                p = Product.model_validate(row["product"])
                if share_products is not None:
                    same = share_products.get(p.item_id)
                    p = same if same is not None and same == p else p
                self.products_[int(row["key"])] = p
                self.columns_.set(int(row["key"]), p)
        self.columns_._grow(len(self.ids_))
        self.base_synonyms_ = self.synonyms_ = self._load_synonyms()
        self.typo_ = TypoCorrector.from_json(
            json.loads((directory / "typo.json").read_text()), self.config.typo
        )
        self.bm25_ = BM25Index.load(directory / "bm25")
        self.dense_ = DenseIndex.load(directory / "dense") if meta["has_dense"] else None
        self.intent_ = CategoryIntentModel.load(directory / "intent") if meta["has_intent"] else None
        fusion = dict(meta["fusion"])
        fusion["weights"] = tuple(fusion["weights"])
        self.fusion_ = FusionConfig(**fusion)
        return self


def _top_positive(scores: np.ndarray, n: int) -> np.ndarray:
    """Keys of the (at most) `n` highest positive `scores`, best first."""
    kk = min(n, int((scores > 0).sum()))
    if kk <= 0:
        return np.zeros(0, dtype=np.int64)
    keys = np.argpartition(-scores, kk - 1)[:kk]
    return keys[np.argsort(-scores[keys], kind="stable")]
