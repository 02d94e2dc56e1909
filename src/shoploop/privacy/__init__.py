"""Privacy: keyed pseudonymisation, noisy published aggregates. User erasure is orchestrated
by the engine (`Engine.delete_user`) because it must reach every store and derived state."""

from shoploop.privacy.noise import laplace_counts
from shoploop.privacy.pseudonymize import Pseudonymizer

__all__ = ["Pseudonymizer", "laplace_counts"]
