"""shoploop.text: normalisation/tokenising shared by BM25 and query understanding; the text encoder.

Import the submodules directly (`shoploop.text.normalize`, `shoploop.text.encoder`); nothing heavy
is loaded at package import.
"""
