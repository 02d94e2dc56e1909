"""shoploop.retrieval: BM25 + dense ANN retrieval, fusion, filters/facets, query understanding.

Entry point: `shoploop.retrieval.hybrid.HybridSearcher` with `shoploop.retrieval.config.HybridConfig`.
Submodules are imported directly; nothing heavy is loaded at package import.
"""
