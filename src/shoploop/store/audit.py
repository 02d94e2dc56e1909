"""Reading the model registry's audit trail the way people ask for it: newest first, filtered."""

from __future__ import annotations

from collections.abc import Sequence

from shoploop.store.protocols import DECISION_ACTIONS, ArtifactStore, RegistryDecision


class BadTrailQuery(ValueError):  # noqa: N818 - names what was asked, like InvalidRequest
    """A trail query the registry cannot answer; `field` names the argument at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def recent_decisions(
    registry: ArtifactStore,
    name: str | None = None,
    *,
    actions: Sequence[str] | None = None,
    limit: int = 50,
) -> list[RegistryDecision]:
    """At most `limit` decisions on `name` (None = every model), newest first, keeping only the
    kinds in `actions` (None = all). Raises BadTrailQuery for an unknown kind or a limit below 1."""
    if limit < 1:
        raise BadTrailQuery("limit", f"must be at least 1, got {limit}")
    unknown = sorted(set(actions or ()) - set(DECISION_ACTIONS))
    if unknown:
        raise BadTrailQuery("actions", f"unknown kinds {unknown}; expected some of {list(DECISION_ACTIONS)}")
    return registry.decisions(name, actions=actions, newest_first=True, limit=limit)
