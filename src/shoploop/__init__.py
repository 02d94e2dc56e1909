"""shoploop: a self-hosted search and recommendation engine for online shops that learns from feedback."""

__version__ = "0.1.0"
