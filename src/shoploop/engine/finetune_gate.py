"""Fine-tune a search model on older feedback, replay the newest searches, promote only if better.

`Engine.train("bi_encoder" | "cross_encoder")` registers a candidate and leaves promotion to a
person. `gated_finetune` closes the loop without one: it holds out the most recent clicked
searches (`feedback.search_gate.recent_holdout`), trains the candidate on everything logged
before them, replays the held-out queries through the active system and through the same
system with only the candidate swapped in (re-ordering each list's shown products, or
searching the whole catalog), and promotes or rejects the candidate with the
decision and its metrics written to the registry (as the learned ranker's gate does).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shoploop.feedback.click_models import ExaminationCurve
from shoploop.feedback.gate import GateDecision, PromotionGate
from shoploop.feedback.search_gate import RankFn, SearchGate, SearchGateConfig, recent_holdout
from shoploop.feedback.training_data import LIST_EVENT_TYPES, LoggedList, join_logs
from shoploop.ranking.cross_encoder import CrossEncoderReranker
from shoploop.retrieval.hybrid import HybridSearcher
from shoploop.store.protocols import ModelVersion

if TYPE_CHECKING:
    from shoploop.engine.engine import Engine

GATED_MODELS = ("bi_encoder", "cross_encoder")


def gated_finetune(
    engine: Engine,
    name: str,
    config: SearchGateConfig = SearchGateConfig(),
    *,
    curve: ExaminationCurve | None = None,
) -> tuple[ModelVersion, GateDecision]:
    """Train `name` ("bi_encoder" or "cross_encoder") behind the replay gate.

    `curve`: the examination curve that weighs held-out outcomes by how likely their slot was
    looked at (the retrain loop passes its own; None = the engine's current one, if any).
    Raises `InvalidRequest("events", ...)` before any training when too few clicked searches
    would be held out to judge the candidate.
    """
    held, cut = held_out_searches(engine, name, config)
    version = engine.train(name, until=cut)

    def promote(model: str, number: int, why: str) -> ModelVersion:
        return engine.promote(model, number, reason=why)

    decision = judge_candidate(engine, version, held, config, curve=curve)
    return PromotionGate.record(engine.stores.registry, version, decision, promote=promote), decision


def held_out_searches(
    engine: Engine, name: str, config: SearchGateConfig
) -> tuple[list[LoggedList], datetime]:
    """The newest clicked searches the gate will replay, and the time the candidate's training
    data must end before. Raises `InvalidRequest` (naming the field) when `name` cannot be gated,
    there is no index, or too few searches would be held out."""
    from shoploop.engine.engine import InvalidRequest  # the engine module imports this one

    if name not in GATED_MODELS:
        raise InvalidRequest("name", f"{name!r} cannot be gated; expected one of {GATED_MODELS}")
    _active_searcher(engine)
    events = engine.stores.events.scan(types=LIST_EVENT_TYPES, exclude_flagged=True)
    _, held, cut = recent_holdout(join_logs(events), config.holdout_fraction)
    if cut is None or len(held) < config.min_lists:
        raise InvalidRequest(
            "events",
            f"{len(held)} recent clicked searches would be held out; the gate needs at least "
            f"{config.min_lists} (holdout_fraction {config.holdout_fraction})",
        )
    return held, datetime.fromtimestamp(cut, tz=UTC)


def judge_candidate(
    engine: Engine,
    version: ModelVersion,
    held: Sequence[LoggedList],
    config: SearchGateConfig,
    *,
    curve: ExaminationCurve | None = None,
) -> GateDecision:
    """The gate's decision on a trained `version` ("search" = a re-encoded index, or
    "cross_encoder") against the active system, over the `held` searches. Records nothing."""
    if curve is None and engine.online.examination is not None:
        curve = ExaminationCurve(engine.online.examination, "online", 0)
    searcher, cross = _active_searcher(engine), engine.cross_encoder
    if version.name == "cross_encoder":
        candidate = _replayer(engine, config, searcher, CrossEncoderReranker.load(version.path))
    else:
        candidate = _replayer(engine, config, engine.load_searcher(version), cross)
    active = _replayer(engine, config, searcher, cross)
    return SearchGate(config).evaluate(held, candidate, active, curve)


def _replayer(
    engine: Engine,
    config: SearchGateConfig,
    searcher: HybridSearcher,
    cross: CrossEncoderReranker | None,
) -> RankFn:
    """How one side of the gate ranks a held-out list (see `SearchGateConfig.replay`)."""
    if config.replay == "shown":
        return lambda lst: engine.replay_order(lst.query or "", lst.items, searcher, cross)
    return lambda lst: engine.replay_ranking(lst.query or "", searcher, cross, k=config.k)


def _active_searcher(engine: Engine) -> HybridSearcher:
    from shoploop.engine.engine import InvalidRequest  # the engine module imports this one

    if engine.searcher is None:
        raise InvalidRequest("catalog", "is empty or the search index is not built yet")
    return engine.searcher
