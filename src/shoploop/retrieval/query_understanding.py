"""Query understanding: typo correction, synonyms, price/size phrases.

Each step is a small, separately testable object; `HybridSearcher` chains them and reports
what each did in an `UnderstoodQuery`.

* `TypoCorrector` — symmetric-delete lookup (Garbe's SymSpell idea) against the catalog's own
  vocabulary: 1-deletes of every vocabulary word are indexed, up to 2-deletes of the query token
  are looked up, and candidates are verified with a true Damerau-Levenshtein distance. Only
  alphabetic tokens the catalog does NOT know are touched (a known word is never "corrected";
  numbers, units, model numbers and CJK stay as typed). Ties break by catalog term frequency.
  Indexing only 1-deletes of the vocabulary keeps memory small; the price is that a query
  missing two letters of a word ("drl" for "drill") is not found.
* `SynonymTable` — a config file of bidirectional groups ("sofa, couch") and one-way rewrites
  ("tv => television"). Groups expand (both spellings match); rewrites replace.
* `parse_phrases` — "under $50", "below 30 dollars", "between 20 and 40", "over $100" become a
  price filter and are removed from the text; "32 inch", "5 gal" become size constraints that
  stay in the text (product titles carry sizes, so BM25 should still match them).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from shoploop.text.normalize import is_numeric_token, normalize, tokenize

__all__ = [
    "ParsedPhrases",
    "SizeConstraint",
    "SynonymTable",
    "TypoCorrector",
    "damerau_levenshtein",
    "parse_phrases",
]


# --------------------------------------------------------------------------- typo correction
def damerau_levenshtein(a: str, b: str, max_dist: int = 2) -> int:
    """Optimal-string-alignment distance, returning max_dist + 1 early when it is exceeded."""
    if abs(len(a) - len(b)) > max_dist:
        return max_dist + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > max_dist:
            return max_dist + 1
        prev2, prev = prev, cur
    return prev[-1]


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


@dataclass(frozen=True)
class TypoConfig:
    min_length: int = 4  # shorter tokens are too often abbreviations or brands to guess at
    max_edit: int = 2
    min_length_edit2: int = 6  # two edits on a 4-letter word reach half the vocabulary
    min_count: int = 2  # a candidate must occur this often in the catalog (singletons are often typos too)


class TypoCorrector:
    """Correct unknown query tokens to frequent catalog words within edit distance ≤ 2."""

    def __init__(self, config: TypoConfig = TypoConfig()) -> None:
        self.config = config

    def fit(self, token_counts: Mapping[str, int], protected: Iterable[str] = ()) -> TypoCorrector:
        """`token_counts`: catalog token -> frequency. `protected`: extra known words (synonyms)."""
        self.counts_: dict[str, int] = {t: int(c) for t, c in token_counts.items() if c > 0}
        self.known_: set[str] = set(self.counts_) | set(protected)
        index: dict[str, list[str]] = defaultdict(list)
        for word, count in self.counts_.items():
            if count < self.config.min_count or not word.isalpha() or len(word) < self.config.min_length - 1:
                continue
            index[word].append(word)
            for d in _deletes(word):
                index[d].append(word)
        self.index_ = dict(index)
        return self

    def add(self, token_counts: Mapping[str, int]) -> None:
        """Add catalog tokens from upserted products (counts only grow; a rebuild via fit resets)."""
        for word, count in token_counts.items():
            new = word not in self.counts_
            self.counts_[word] = self.counts_.get(word, 0) + int(count)
            self.known_.add(word)
            c = self.counts_[word]
            if (
                (new or c - count < self.config.min_count <= c)
                and word.isalpha()
                and c >= self.config.min_count
            ):
                for d in _deletes(word) | {word}:
                    self.index_.setdefault(d, []).append(word)

    def correct_token(self, token: str) -> str | None:
        """The correction for `token`, or None when it is known, numeric, too short or has no candidate."""
        c = self.config
        if (
            token in self.known_
            or is_numeric_token(token)
            or not token.isalpha()
            or len(token) < c.min_length
        ):
            return None
        if not token.isascii():  # the vocabulary is mostly Latin; do not map other scripts onto it
            return None
        max_edit = c.max_edit if len(token) >= c.min_length_edit2 else 1
        probes = {token} | _deletes(token)
        if max_edit >= 2:
            probes |= {d2 for d in _deletes(token) for d2 in _deletes(d)}
        cands: set[str] = set()
        for p in probes:
            cands.update(self.index_.get(p, ()))
        best: tuple[int, int, str] | None = None
        for cand in cands:
            dist = damerau_levenshtein(token, cand, max_edit)
            if dist > max_edit:
                continue
            key = (dist, -self.counts_.get(cand, 0), cand)
            if best is None or key < best:
                best = key
        return best[2] if best else None

    def correct(self, tokens: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """(corrected tokens, {original: correction}) — unknown tokens with no candidate stay as typed."""
        out: list[str] = []
        fixes: dict[str, str] = {}
        for tok in tokens:
            fix = self.correct_token(tok)
            if fix is not None:
                fixes[tok] = fix
            out.append(fix or tok)
        return out, fixes

    def to_json(self) -> dict:
        return {"counts": self.counts_, "protected": sorted(self.known_ - set(self.counts_))}

    @classmethod
    def from_json(cls, data: Mapping, config: TypoConfig = TypoConfig()) -> TypoCorrector:
        return cls(config).fit(data["counts"], data.get("protected", ()))


# --------------------------------------------------------------------------- synonyms
@dataclass(frozen=True)
class SynonymTable:
    """Phrase-level synonyms on normalised tokens.

    `groups`: each tuple of phrases is mutually equivalent (expansion).
    `rewrites`: lhs phrase -> rhs phrase (replacement, one way).
    `one_way`: lhs phrase -> more phrases it also finds (expansion, one way): the rest of a
    right-hand side with several alternatives, as Solr and Elasticsearch synonym files write
    them ("a => b, c" replaces a by b and also searches c; "a => a, b" keeps a and adds b).
    """

    groups: tuple[tuple[tuple[str, ...], ...], ...] = ()
    rewrites: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()
    one_way: tuple[tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], ...] = ()

    @classmethod
    def parse(cls, text: str) -> SynonymTable:
        """Lines: "a, b, c" (group) or "a, b => c" (one-way; "=> c, d" also searches d);
        '#' starts a comment."""
        groups: list[tuple[tuple[str, ...], ...]] = []
        rewrites: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        one_way: list[tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]] = []
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if "=>" in line:
                lhs, _, rhs = line.partition("=>")
                alternatives = [tuple(tokenize(p)) for p in rhs.split(",") if tokenize(p)]
                if not alternatives:
                    raise ValueError(f"synonyms line {lineno}: empty right-hand side")
                target, also = alternatives[0], tuple(alternatives[1:])
                for phrase in lhs.split(","):
                    src = tuple(tokenize(phrase))
                    if not src:
                        continue
                    if src != target:
                        rewrites.append((src, target))
                    extra = tuple(a for a in also if a != src)
                    if extra:
                        one_way.append((src, extra))
            else:
                phrases = tuple(tuple(tokenize(p)) for p in line.split(",") if tokenize(p))
                if len(phrases) >= 2:
                    groups.append(phrases)
        return cls(tuple(groups), tuple(rewrites), tuple(one_way))

    @classmethod
    def from_file(cls, path: Path) -> SynonymTable:
        return cls.parse(path.read_text(encoding="utf-8"))

    @classmethod
    def default(cls) -> SynonymTable:
        text = (
            resources.files("shoploop.retrieval").joinpath("synonyms.default.txt").read_text(encoding="utf-8")
        )
        return cls.parse(text)

    def merged(self, other: SynonymTable) -> SynonymTable:
        """Both tables' rules (this one's first)."""
        return SynonymTable(
            self.groups + other.groups, self.rewrites + other.rewrites, self.one_way + other.one_way
        )

    def vocabulary(self) -> set[str]:
        words: set[str] = set()
        for g in self.groups:
            for p in g:
                words.update(p)
        for lhs, rhs in self.rewrites:
            words.update(lhs)
            words.update(rhs)
        for lhs, extra in self.one_way:
            words.update(lhs)
            for phrase in extra:
                words.update(phrase)
        return words

    def apply(self, tokens: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
        """(rewritten tokens, expansion tokens, human-readable list of applied rules).

        Rewrites replace the matched phrase in the token list; group matches add the other
        members' tokens as expansions (for BM25) without changing the main text.
        """
        toks = list(tokens)
        applied: list[str] = []
        expansion: list[str] = []
        # one-way expansions look at the query as typed, before a rewrite replaces their phrase
        for lhs, extra in self.one_way:
            if _find(toks, lhs) >= 0:
                for phrase in extra:
                    expansion.extend(phrase)
                applied.append(f"{' '.join(lhs)} -> also {', '.join(' '.join(p) for p in extra)}")
        for lhs, rhs in sorted(self.rewrites, key=lambda r: -len(r[0])):
            i = _find(toks, lhs)
            while i >= 0:
                toks[i : i + len(lhs)] = list(rhs)
                applied.append(f"{' '.join(lhs)} => {' '.join(rhs)}")
                i = _find(toks, lhs, i + len(rhs))
        for group in self.groups:
            hit = next((p for p in group if _find(toks, p) >= 0), None)
            if hit is None:
                continue
            others = [p for p in group if p != hit]
            for p in others:
                expansion.extend(p)
            applied.append(f"{' '.join(hit)} ~ {', '.join(' '.join(p) for p in others)}")
        return toks, expansion, applied


def _find(toks: Sequence[str], phrase: Sequence[str], start: int = 0) -> int:
    n = len(phrase)
    for i in range(start, len(toks) - n + 1):
        if tuple(toks[i : i + n]) == tuple(phrase):
            return i
    return -1


# --------------------------------------------------------------------------- price / size phrases
@dataclass(frozen=True)
class SizeConstraint:
    value: float
    unit: str  # normalised unit: inch, ft, gal, lb, oz, volt, watt, amp, qt, mm, cm


@dataclass(frozen=True)
class ParsedPhrases:
    text: str  # the query with price phrases removed
    min_price: float | None = None
    max_price: float | None = None
    sizes: tuple[SizeConstraint, ...] = ()
    matched: tuple[str, ...] = field(default_factory=tuple)  # the phrases that were recognised


_MONEY = r"(?:\$\s*)?(\d+(?:[.,]\d+)?)\s*(?:\$|dollars?|bucks|usd|€|eur|euros?)?"
_CURRENCY_HINT = re.compile(r"\$|dollar|bucks|usd|€|eur")
_BETWEEN_RE = re.compile(r"\b(?:between|from)\s+" + _MONEY + r"\s+(?:and|to|-)\s+" + _MONEY)
_RANGE_RE = re.compile(r"\$\s*(\d+(?:\.\d+)?)\s*(?:-|to)\s*\$?\s*(\d+(?:\.\d+)?)")
_UNDER_RE = re.compile(r"\b(?:under|below|less than|cheaper than|up to|at most|max(?:imum)?|<=?)\s*" + _MONEY)
_OVER_RE = re.compile(r"\b(?:over|above|more than|at least|min(?:imum)?|>=?)\s*" + _MONEY)
_UNIT_AFTER = re.compile(
    r"^\s*(?:in\b|inch|ft\b|feet|foot|gal|lb|oz|volt|v\b|watt|w\b|amp|qt|mm|cm|sq|cu|pc|pk|%|')"
)
_SIZE_UNITS = ("inch", "ft", "gal", "lb", "oz", "volt", "watt", "amp", "qt", "mm", "cm")
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?|\d+/\d+)\s+(" + "|".join(_SIZE_UNITS) + r")\b")


def _num(s: str) -> float | None:
    try:
        if "/" in s:
            a, b = s.split("/", 1)
            return float(a) / float(b) if float(b) else None
        return float(s.replace(",", "."))
    except ValueError:
        return None


def parse_phrases(query: str) -> ParsedPhrases:
    """Extract price filters (removed from the text) and size constraints (kept). Never raises.

    A bare number after "under"/"over" counts as a price unless a unit follows it ("under 50 lbs"
    is a weight, not a price); "between X and Y" is read as a price range.
    """
    text = unicodedata.normalize("NFKC", query).lower()
    lo: float | None = None
    hi: float | None = None
    matched: list[str] = []

    def take(m: re.Match[str]) -> None:
        nonlocal text
        matched.append(m.group().strip())
        text = text[: m.start()] + " " + text[m.end() :]

    for regex in (_BETWEEN_RE, _RANGE_RE):
        m = regex.search(text)
        if m:
            a, b = _num(m.group(1)), _num(m.group(2))
            if a is not None and b is not None:
                lo, hi = min(a, b), max(a, b)
                take(m)
                break
    if hi is None:
        for m in _UNDER_RE.finditer(text):
            if _UNIT_AFTER.match(text[m.end() :]) and not _CURRENCY_HINT.search(m.group()):
                continue
            v = _num(m.group(1))
            if v is not None:
                hi = v
                take(m)
                break
    if lo is None:
        for m in _OVER_RE.finditer(text):
            if _UNIT_AFTER.match(text[m.end() :]) and not _CURRENCY_HINT.search(m.group()):
                continue
            v = _num(m.group(1))
            if v is not None:
                lo = v
                take(m)
                break
    sizes: list[SizeConstraint] = []
    for m in _SIZE_RE.finditer(normalize(text)):
        v = _num(m.group(1))
        if v is not None:
            sizes.append(SizeConstraint(v, m.group(2)))
            matched.append(m.group())
    return ParsedPhrases(" ".join(text.split()), lo, hi, tuple(sizes), tuple(matched))


def token_counts(texts: Iterable[str]) -> Counter[str]:
    """Catalog vocabulary with frequencies (normalised, unstemmed tokens) for the typo corrector."""
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update(tokenize(t))
    return counts
