"""What an A/B variant changes in the lists the engine serves.

An experiment's variant (`shoploop.evaluation.ab.Variant`) names a `model_version` and/or a
`policy`. The engine honours:

* `model_version`: model versions to serve instead of the active ones, in the same `name:vN`
  form as a served list's `model_version`, joined by `+` — e.g. `ranker:v3`,
  `ranker:v3+cross_encoder:none` (`none`: serve without that re-ranker) or `recommender:v2`
  (the home feed's model). The registry must hold each named version; it is loaded on first
  use and kept while the experiment runs.
* `policy`: `deterministic` (never explore: every list in the ranker's order) or `explore`
  (the engine's exploration policy, the default).

Search honours the re-rankers (`ranker`, `cross_encoder`), the home feed the `recommender` and
the `home_ranker`, category pages the `browse_ranker` and the `recommender` (whose scores feed
the featured order).
The search index cannot be swapped per request: it is the largest model, and it changes
through retraining and promotion instead.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

SWAPPABLE_MODELS = ("browse_ranker", "cross_encoder", "home_ranker", "ranker", "recommender")
_REQUIRED = ("recommender",)  # a feed cannot be served without one
# Learned rankers of one browsing surface each (category pages, the home feed), trained by the
# retraining loop from that surface's logged lists; the search `ranker` is the third.
SURFACE_RANKERS = ("browse_ranker", "home_ranker")
# Re-rankers the engine serves without until one is trained and promoted (Engine attribute =
# name); rolling back their first version returns to serving without them.
OPTIONAL_MODELS = ("cross_encoder", "ranker", *SURFACE_RANKERS)
POLICIES = ("deterministic", "explore")
_PART = re.compile(r"^(?P<name>[a-z_]+):(?:v?(?P<version>\d+)|(?P<none>none))$")


class VariantSpecError(ValueError):
    """A variant's `model_version` or `policy` the engine cannot serve; says which and why."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


@dataclass(frozen=True)
class ServingOverride:
    """How one request is served differently from the engine's defaults."""

    label: str  # "<experiment id>/<variant name>", for logs and explanations
    models: Mapping[str, int | None] = field(default_factory=dict)  # name -> version; None = without
    policy: str | None = None  # None: the engine's own


def parse_model_version(text: str | None) -> dict[str, int | None]:
    """`"ranker:v3+cross_encoder:none"` -> `{"ranker": 3, "cross_encoder": None}`."""
    if text is None or not text.strip():
        return {}
    models: dict[str, int | None] = {}
    for part in text.strip().split("+"):
        match = _PART.match(part.strip())
        if match is None:
            raise VariantSpecError("model_version", f"{part!r} is not 'name:vN' or 'name:none'")
        name = match["name"]
        if name not in SWAPPABLE_MODELS:
            raise VariantSpecError(
                "model_version", f"{name!r} cannot differ per variant (only {', '.join(SWAPPABLE_MODELS)})"
            )
        if name in models:
            raise VariantSpecError("model_version", f"{name!r} is named twice")
        if match["none"] and name in _REQUIRED:
            raise VariantSpecError("model_version", f"{name!r} cannot be 'none'")
        models[name] = None if match["none"] else int(match["version"])
    return models


@functools.lru_cache(maxsize=256)  # per request for every shopper in an experiment; specs rarely change
def serving_override(label: str, model_version: str | None, policy: str | None) -> ServingOverride | None:
    """The override for a variant, or None when it serves exactly what the engine would."""
    models = parse_model_version(model_version)
    if policy is not None and policy not in POLICIES:
        raise VariantSpecError("policy", f"must be one of {', '.join(POLICIES)}, got {policy!r}")
    if not models and policy in (None, "explore"):
        return None
    return ServingOverride(label=label, models=models, policy=policy)
