"""Privacy: keyed pseudonymisation, retention (erasing data older than the shop keeps it),
noisy published aggregates, the shopper's access document. Erasure and access are orchestrated
by the engine (`Engine.delete_user`, `Engine.export_user`) because they must reach every store
and derived state."""

from shoploop.privacy.noise import laplace_counts
from shoploop.privacy.pseudonymize import Pseudonymizer, shop_pseudonymizer
from shoploop.privacy.retention import RetentionPolicy, RetentionReport, apply_retention

__all__ = [
    "Pseudonymizer",
    "RetentionPolicy",
    "RetentionReport",
    "apply_retention",
    "laplace_counts",
    "shop_pseudonymizer",
]
