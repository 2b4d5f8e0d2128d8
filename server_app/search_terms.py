"""How names and search queries are compared, with no database: shared by every index store.

A name matches a query when every whitespace-separated term of the query, folded, is a
substring of the folded name. Folding (``fold``) makes the comparison case- and
accent-insensitive: ``Ação``, ``ACAO`` and ``acao`` are all ``acao``.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = ["TRIGRAM", "SearchTerms", "fold", "matches"]

#: Terms at least this long can be looked up in a trigram index; shorter ones cannot.
TRIGRAM = 3


def _without_marks(text: str) -> str:
    return "".join(char for char in text if not unicodedata.combining(char))


def fold(text: str) -> str:
    """The form names and terms are compared in: NFKD, combining marks dropped, casefolded.

    ``fold(fold(x)) == fold(x)``. ASCII text only needs lower-casing.
    """
    if text.isascii():
        return text.lower()
    # Casefolding can bring back marks (U+0130 -> i + U+0307) and NFKD capitals
    # (U+210C -> H): fold until nothing changes.
    for _ in range(4):
        folded = _without_marks(unicodedata.normalize("NFKD", text)).casefold()
        if folded == text:
            break
        text = folded
    return text


def _has_control(text: str) -> bool:
    return any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in text)


def matches(terms: tuple[str, ...], name: str) -> bool:
    """True when every folded term is a substring of the folded ``name``."""
    key = fold(name)
    return all(term in key for term in terms)


@dataclass(frozen=True)
class SearchTerms:
    """A query split into folded terms, as a store needs them.

    ``terms`` are the distinct folded terms; ``long_terms`` (``TRIGRAM`` characters or
    more) can use a trigram index; ``short_terms`` cannot, and leave out any short term
    that a long term already contains (it is implied). ``exact`` is the folded whole
    query, which an exactly equal folded name matches. ``matches_nothing`` is set for a
    query no name can match (a control character: names never hold one).
    """

    terms: tuple[str, ...]
    long_terms: tuple[str, ...]
    short_terms: tuple[str, ...]
    exact: str
    matches_nothing: bool = False

    @classmethod
    def parse(cls, query: str) -> SearchTerms | None:
        """The query's terms, or None when it has none (only whitespace or marks)."""
        # A term that folds to nothing (a lone combining mark) would match every name.
        terms = tuple(dict.fromkeys(key for key in map(fold, query.split()) if key))
        if not terms:
            return None
        exact = fold(query.strip())
        if any(_has_control(term) for term in terms):
            return cls(terms, (), (), exact, matches_nothing=True)
        long_terms = tuple(term for term in terms if len(term) >= TRIGRAM)
        short_terms = tuple(
            term
            for term in terms
            if len(term) < TRIGRAM and not any(term in other for other in long_terms)
        )
        return cls(terms, long_terms, short_terms, exact)
