"""Text normalisation and tokenisation shared by BM25, typo correction and query parsing.

One function chain for documents and queries, so that a query token can only match a
document token that went through the same rules:

    normalize(text)   NFKC, lowercase, safe accent folding, unit spelling ("in."/"inch"/'"' -> "inch"),
                      number/unit splitting ("32inch" -> "32 inch")
    tokenize(text)    normalize + split into tokens: words, numbers (1.5, 1/2), dimension
                      compounds ("2x4", also emitted for "2 in. x 4 in."), single CJK characters
    stem_tokens(toks) PyStemmer (English Snowball) on alphabetic tokens; numbers/CJK untouched
    analyze(text)     tokenize -> drop stopwords -> stem: what the BM25 index stores

Why units are spelled one way: Home Depot titles write `1/2 in.`, `3/4"`, `5-gal.`, shoppers
type `1/2 inch`, `5 gallon`; without a shared spelling BM25 cannot match them at all.
Why CJK characters become single-character tokens: Chinese has no spaces, and a query that
matches nothing is worse than one that matches on characters (the usual unigram fallback).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

__all__ = [
    "STOPWORDS",
    "UNITS",
    "analyze",
    "is_numeric_token",
    "normalize",
    "normalize_query",
    "stem_tokens",
    "tokenize",
]

# A deliberately small list: product queries are short, and words like "in", "on", "off",
# "up", "out" can carry meaning ("on/off switch", "built in") so they are kept.
_STOPWORD_TEXT = (
    "a an and are as at be by for from has have how i is it its of or that the this to was what "
    "when where which who will with x you your"
)
STOPWORDS: frozenset[str] = frozenset(_STOPWORD_TEXT.split())

# Unit words that are unambiguous anywhere in the text (plural and long forms).
_UNIT_WORDS: dict[str, str] = {
    "inches": "inch",
    "feet": "ft",
    "foot": "ft",
    "gallon": "gal",
    "gallons": "gal",
    "pounds": "lb",
    "pound": "lb",
    "lbs": "lb",
    "ounce": "oz",
    "ounces": "oz",
    "volts": "volt",
    "watts": "watt",
    "amps": "amp",
    "ampere": "amp",
    "quart": "qt",
    "quarts": "qt",
    "millimeter": "mm",
    "millimeters": "mm",
    "centimeter": "cm",
    "centimeters": "cm",
}
# Abbreviations that are only units right after a number ("2 in." yes, "built in" no).
_UNIT_AFTER_NUMBER: dict[str, str] = {
    "in": "inch",
    "inch": "inch",
    "ft": "ft",
    "gal": "gal",
    "lb": "lb",
    "oz": "oz",
    "v": "volt",
    "volt": "volt",
    "w": "watt",
    "watt": "watt",
    "a": "amp",
    "amp": "amp",
    "qt": "qt",
    "mm": "mm",
    "cm": "cm",
    "btu": "btu",
    "sq": "sq",
    "cu": "cu",
    "pc": "pc",
    "pk": "pk",
    "mil": "mil",
}

# Every word that is a unit once normalised (both the abbreviations and what they become).
UNITS: frozenset[str] = frozenset(_UNIT_AFTER_NUMBER) | frozenset(_UNIT_AFTER_NUMBER.values())

_NUM = r"\d+(?:[./]\d+)?"
# number followed (optionally spaced / hyphenated) by a unit abbreviation with optional dot.
_UNIT_ABBR_RE = re.compile(
    r"(?<![\w.])("
    + _NUM
    + r")\s*-?\s*("
    + "|".join(sorted(_UNIT_AFTER_NUMBER, key=len, reverse=True))
    + r")\.?(?![a-z])"
)
_INCH_MARK_RE = re.compile(r"(" + _NUM + r")\s*(?:\"|''|”|″)")
_FOOT_MARK_RE = re.compile(r"(" + _NUM + r")\s*(?:'|’|′)")
_UNIT_WORD_RE = re.compile(r"\b(" + "|".join(_UNIT_WORDS) + r")\b")
# "32 inch x 4 inch" / "2x4" / "2 x 4" -> a compound token "2x4" in addition to the parts.
_DIM_RE = re.compile(r"(" + _NUM + r")\s*(?:inch|ft)?\s*(?:x|×|by)\s*(" + _NUM + r")(?=\s|$|[^\d./])")
_CJK_RANGES = (
    (0x3040, 0x30FF),  # hiragana, katakana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # compatibility ideographs
    (0x20000, 0x2FA1F),  # extensions B..
)
_CJK_CLASS = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _CJK_RANGES)
_TOKEN_RE = re.compile(
    r"(?P<dim>\d+(?:\.\d+)?x\d+(?:\.\d+)?)(?![\w])"  # 2x4 kept as one token
    r"|(?P<mixed>(?:[a-z]+\d|\d+[a-z])[a-z0-9]*)"  # model numbers: m18, r13, 4k
    r"|(?P<num>\d+(?:[./]\d+)*)"
    r"|(?P<cjk>[" + _CJK_CLASS + r"])"
    r"|(?P<word>[^\W\d_" + _CJK_CLASS + r"]+)"
)


def _fold_accents(text: str) -> str:
    """Strip combining marks from Latin letters only ("café" -> "cafe").

    Folding is "safe" only where the base letter is Latin: in other scripts the marks are part of
    the letter (Devanagari vowel signs, Japanese dakuten) and stripping them changes the word.
    """
    decomposed = unicodedata.normalize("NFD", text)
    out: list[str] = []
    prev_latin = False
    for ch in decomposed:
        if unicodedata.combining(ch):
            if prev_latin:
                continue
            out.append(ch)
            continue
        prev_latin = ch.isascii() and ch.isalpha()
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def normalize(text: str) -> str:
    """Canonical form of a product text or query (see module docstring). Never raises on str input."""
    text = unicodedata.normalize("NFKC", text)
    text = _fold_accents(text.lower())
    # Inch/foot marks before anything strips punctuation.
    text = _INCH_MARK_RE.sub(r"\1 inch ", text)
    text = _FOOT_MARK_RE.sub(r"\1 ft ", text)
    # "18-volt", "32inch", "5 gal." -> "18 volt", "32 inch", "5 gal"
    text = _UNIT_ABBR_RE.sub(lambda m: f"{m.group(1)} {_UNIT_AFTER_NUMBER[m.group(2)]} ", text)
    text = _UNIT_WORD_RE.sub(lambda m: _UNIT_WORDS[m.group(1)], text)
    # Anything that is not a word char, digit, fraction/decimal separator between digits, or x: space.
    text = re.sub(r"(?<!\d)[./]|[./](?!\d)", " ", text)
    text = re.sub(r"[^\w./×]+", " ", text)
    text = text.replace("_", " ")
    return " ".join(text.split())


# Queries repeat heavily and every search event of a log passes through autocomplete and the
# search analytics (the start-up replay too), so their ~13 us normalisation is cached.
normalize_query = lru_cache(maxsize=50_000)(normalize)


def tokenize(text: str) -> list[str]:
    """Tokens of `normalize(text)`: words, numbers, "NxM" dimension compounds, single CJK characters."""
    norm = normalize(text)
    tokens: list[str] = []
    for m in _TOKEN_RE.finditer(norm):
        kind = m.lastgroup
        tok = m.group()
        if kind == "dim":
            a, b = tok.split("x", 1)
            tokens.extend((tok, a, b))
        elif kind == "mixed":
            # Keep the model number whole and its parts, so "m18" matches "m 18" and vice versa.
            tokens.append(tok)
            tokens.extend(re.findall(r"[a-z]+|\d+", tok))
        else:
            tokens.append(tok)
    # Spaced dimensions ("2 inch x 4 inch") also yield the compound so "2x4" queries match.
    for m in _DIM_RE.finditer(norm):
        compound = f"{m.group(1)}x{m.group(2)}"
        if compound not in tokens:
            tokens.append(compound)
    return tokens


def is_numeric_token(token: str) -> bool:
    """Tokens with a digit (numbers, fractions, "2x4", model numbers "m18"): never stemmed/corrected."""
    return any(ch.isdigit() for ch in token)


def _is_cjk(token: str) -> bool:
    return len(token) == 1 and any(lo <= ord(token) <= hi for lo, hi in _CJK_RANGES)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer  # local import: PyStemmer is a C extension, load it only when stemming

    return Stemmer.Stemmer("english")


def stem_tokens(tokens: Sequence[str]) -> list[str]:
    """English Snowball stems for alphabetic tokens; numbers and CJK characters pass through."""
    stemmer = _stemmer()
    return [tok if is_numeric_token(tok) or _is_cjk(tok) else stemmer.stemWord(tok) for tok in tokens]


def analyze(text: str, *, stopwords: Iterable[str] | None = STOPWORDS, stem: bool = True) -> list[str]:
    """The BM25 analyzer: tokenize, drop stopwords, stem."""
    stop = frozenset(stopwords) if stopwords is not None else frozenset()
    tokens = [t for t in tokenize(text) if t not in stop]
    return stem_tokens(tokens) if stem else tokens
