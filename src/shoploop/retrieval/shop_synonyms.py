"""The shop's own synonym rules, kept in `HOME/synonyms.txt` and applied on top of the packaged
defaults, live: a merchandiser who sees "unicorn lamp" find nothing adds
"unicorn lamp => night light" and the next search uses it, no index rebuild (synonyms act on
the query, not on the indexed products).

The format is the packaged file's, which is also Solr's and Elasticsearch's, so a shop's
existing synonyms file works as it is: "a, b, c" (a group: any member also matches the others),
"a, b => c" (a one-way rewrite) or "a => b, c" (a is replaced by b, and c is searched too;
"a => a, b" keeps a and adds b); "#" starts a comment. Saved text is checked line by line, so a
rule that would do nothing is refused with its line number instead of being ignored. The engine
keeps the file as a `store.files.CheckedTextFile(home, FILE_NAME, check_rules)`.
"""

from __future__ import annotations

from shoploop.retrieval.query_understanding import SynonymTable

FILE_NAME = "synonyms.txt"
MAX_CHARS = 200_000
MAX_RULES = 5_000


def check_rules(text: str) -> SynonymTable:
    """Parse a shop's rules; ValueError names the first line that is not a working rule."""
    if len(text) > MAX_CHARS:
        raise ValueError(f"at most {MAX_CHARS:,} characters, got {len(text):,}")
    rules = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        rules += 1
        try:
            table = SynonymTable.parse(line)
        except ValueError:
            raise ValueError(f"line {lineno}: {raw.strip()!r} has nothing after '=>'") from None
        if not table.groups and not table.rewrites and not table.one_way:
            raise ValueError(
                f"line {lineno}: {raw.strip()!r} is not a rule; "
                "write 'a, b' (same meaning) or 'a => b' (rewrite)"
            )
    if rules > MAX_RULES:
        raise ValueError(f"at most {MAX_RULES:,} rules, got {rules:,}")
    return SynonymTable.parse(text)
