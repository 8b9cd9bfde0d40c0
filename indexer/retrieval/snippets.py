"""Snippets: the passage of a hit's text that best shows why it matched, query terms marked.

The index keeps no text, only where each document came from (file, byte offset, byte length, the
CRC-32 of those bytes and the reader that read them); a snippet reads the bytes back, checks their
CRC, turns the record into text with the same reader, re-analyzes it with the index's analyzer and
picks the window of about WINDOW words whose distinct query terms weigh most (weights: the terms'
idf, so a rare term outweighs "the"). A source that moved or changed, even in place and to the
same length, gives a snippet saying so, never an error.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice

from indexer.analysis import WORD_RE, Analyzer
from indexer.corpus.readers import READERS, STDIN, ReadOptions, read_source
from indexer.store.meta import IndexMeta

WINDOW = 30  # words shown, counting the lead-in
LEAD = 3  # words shown before the first query term of the window, for context
ELLIPSIS = "..."
_SPACE_RE = re.compile(r"\s+")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # never pass terminal escapes through


@dataclass(frozen=True)
class Snippet:
    """A short passage as (text, is a query term) parts; `missing_source` names a source file that
    has moved or changed since the build (the parts then say so)."""

    parts: tuple[tuple[str, bool], ...]
    missing_source: str | None = None

    def marked(self, start: str = "**", end: str = "**") -> str:
        """The passage as one string, query terms between `start` and `end`."""
        return "".join(f"{start}{text}{end}" if hit else text for text, hit in self.parts)


class SnippetMaker:
    """Makes snippets for the documents of one open index. `reader` needs `doc_source(doc)`,
    `doc_name(doc)` and `meta`; `analyzer` must be the index's own, so that words match query
    terms. Records are read back with the reader and the fields and encoding the build used."""

    def __init__(self, reader, analyzer: Analyzer, options: ReadOptions | None = None):
        self.reader = reader
        self.analyzer = analyzer
        self.options = options or _read_options(reader.meta)

    def snippet(self, doc: int, terms: Mapping[str, float]) -> Snippet:
        """The snippet of doc `doc` for the (analyzed) query terms, each with its weight (idf)."""
        path, offset, length, crc, reader = self.reader.doc_source(doc)
        text, why = source_text(path, offset, length, crc, reader, self.reader.doc_name(doc), self.options)
        if text is None:
            if path == STDIN:
                return Snippet(((f"[source not available: {why}]", False),))
            return Snippet(((f"[source not available: {path} {why}]", False),), missing_source=path)
        return Snippet(best_passage(text, terms, self.analyzer))


def source_text(
    path: str, offset: int, length: int, crc: int, reader: str, name: str, options: ReadOptions
) -> tuple[str | None, str]:
    """(the document's indexed text, "") read back from its source, or (None, why not): the
    bytes at its offset must still have the CRC-32 they had when it was indexed."""
    if path == STDIN:
        return None, "it was read from standard input, which the index does not keep"
    try:
        data = read_source(path, offset, length + 1)  # and the byte after: has the record grown?
    except FileNotFoundError:
        return None, "moved or deleted since indexing"
    except (OSError, EOFError, zlib.error):
        return None, "cannot be read"
    data, following = data[:length], data[length:]
    kind = READERS.get(reader)
    if len(data) != length or zlib.crc32(data) != crc or kind is None or not kind.ends_record(following):
        return None, "changed since indexing"
    text = kind.text_of(data, name, options)
    return (text, "") if text is not None else (None, "changed since indexing")


def best_passage(text: str, terms: Mapping[str, float], analyzer: Analyzer) -> tuple[tuple[str, bool], ...]:
    """The ~WINDOW-word passage of `text` whose distinct `terms` have the largest total weight
    (ties: the earliest), as (text, is a query term) parts; every word that analyzes to one of
    `terms` is marked. Whitespace runs become one space; "..." marks a cut.

    Each distinct word is analyzed once, and the window slides over the query terms' occurrences
    only, so a long document costs about one regex pass over it."""
    text = analyzer.normalized(text)  # words are cut from the normalized text, as in the index
    words = WORD_RE.findall(text)
    if not words:
        return ((_clean(text[:200]), False),) if text.strip() else ()
    holds: dict[str, frozenset[str]] = {}  # a word -> the query terms it holds, for words holding any
    for word in set(words):
        # one match may lower-case into several words (a rare combining mark); they share its span
        found = {analyzer.term(w) for w in WORD_RE.findall(word.lower())} & terms.keys()
        if found:
            holds[word] = frozenset(found)
    hits = [i for i, word in enumerate(words) if word in holds]
    # Slide a window of WINDOW - LEAD words from each occurrence of a query term, counting the
    # query terms inside it. fsum makes equal term sets weigh equal.
    best_start, best_weight = -1, 0.0
    inside: dict[str, int] = {}
    end = 0  # the first occurrence not yet inside the window
    for i in hits:
        while end < len(hits) and hits[end] < i + WINDOW - LEAD:
            for term in holds[words[hits[end]]]:
                inside[term] = inside.get(term, 0) + 1
            end += 1
        weight = math.fsum(terms[t] for t in inside)
        if best_start < 0 or weight > best_weight:
            best_start, best_weight = i, weight
        for term in holds[words[i]]:
            inside[term] -= 1
            if not inside[term]:
                del inside[term]
    first = max(0, best_start - LEAD)
    first = max(0, min(first, len(words) - WINDOW))
    last = min(len(words), first + WINDOW)
    parts: list[tuple[str, bool]] = [(ELLIPSIS + " ", False)] if first > 0 else []
    previous_end = None
    for match in islice(WORD_RE.finditer(text), first, last):
        if previous_end is not None:
            parts.append((_clean(text[previous_end : match.start()]), False))
        parts.append((_clean(match.group()), match.group() in holds))
        previous_end = match.end()
    if last < len(words):
        parts.append((" " + ELLIPSIS, False))
    return tuple(parts)


def _clean(text: str) -> str:
    return _CONTROL_RE.sub(" ", _SPACE_RE.sub(" ", text))


def _read_options(meta: IndexMeta) -> ReadOptions:
    read = meta.read
    return ReadOptions(read.format, read.id_fields, read.text_fields, read.encoding, read.include, read.exclude)
