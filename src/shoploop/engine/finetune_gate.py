"""Fine-tune a search model on older feedback, replay the newest searches, promote only if better.

`Engine.train("bi_encoder" | "cross_encoder")` registers a candidate and leaves promotion to a
person. `gated_finetune` closes the loop without one: it holds out the most recent clicked
searches (`feedback.search_gate.recent_holdout`), trains the candidate on everything logged
before them, replays the held-out queries through the active system and through the same
system with only the candidate swapped in, and promotes or rejects the candidate with the
decision and its metrics written to the registry (as the learned ranker's gate does).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shoploop.feedback.click_models import ExaminationCurve
from shoploop.feedback.gate import GateDecision, PromotionGate
from shoploop.feedback.search_gate import SearchGate, SearchGateConfig, recent_holdout
from shoploop.feedback.training_data import LIST_EVENT_TYPES, join_logs
from shoploop.ranking.cross_encoder import CrossEncoderReranker
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
    from shoploop.engine.engine import InvalidRequest  # the engine module imports this one

    if name not in GATED_MODELS:
        raise InvalidRequest("name", f"{name!r} cannot be gated; expected one of {GATED_MODELS}")
    if engine.searcher is None:
        raise InvalidRequest("catalog", "is empty or the search index is not built yet")
    events = engine.stores.events.scan(types=LIST_EVENT_TYPES, exclude_flagged=True)
    _, held, cut = recent_holdout(join_logs(events), config.holdout_fraction)
    if cut is None or len(held) < config.min_lists:
        raise InvalidRequest(
            "events",
            f"{len(held)} recent clicked searches would be held out; the gate needs at least "
            f"{config.min_lists} (holdout_fraction {config.holdout_fraction})",
        )
    if curve is None and engine.online.examination is not None:
        curve = ExaminationCurve(engine.online.examination, "online", 0)
    version = engine.train(name, until=datetime.fromtimestamp(cut, tz=UTC))
    searcher, cross = engine.searcher, engine.cross_encoder
    if name == "bi_encoder":
        tuned = engine.load_searcher(version)

        def candidate(q: str) -> list[str]:
            return engine.replay_ranking(q, tuned, cross, k=config.k)
    else:
        model = CrossEncoderReranker.load(version.path)

        def candidate(q: str) -> list[str]:
            return engine.replay_ranking(q, searcher, model, k=config.k)

    def active(q: str) -> list[str]:
        return engine.replay_ranking(q, searcher, cross, k=config.k)

    def promote(model: str, number: int, why: str) -> ModelVersion:
        return engine.promote(model, number, reason=why)

    decision = SearchGate(config).evaluate(held, candidate, active, curve)
    return PromotionGate.record(engine.stores.registry, version, decision, promote=promote), decision
