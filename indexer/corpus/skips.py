"""Skipped and repaired input: why a file or record was not indexed (or was, with a repair).

A reason has a stable code, the key under which `--json`, `stats` and the index's meta count it,
and a label for people. The readers log what they skip in a SkipLog, which keeps the count and
the first few places of each reason; with --strict the first problem is an error instead.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from indexer.errors import CorpusError

EXAMPLES_PER_REASON = 3


class SkipReason(Enum):
    """Why input was skipped; `kept` reasons are repairs: the document was indexed all the same."""

    UNREADABLE = "unreadable"
    NOT_REGULAR_FILE = "not_regular_file"
    BINARY = "binary"
    EMPTY = "empty"
    INVALID_JSON = "invalid_json"
    NOT_JSON_OBJECT = "not_json_object"
    NO_ID = "no_id"
    NO_TEXT = "no_text"
    UNCLOSED_TREC_RECORD = "unclosed_trec_record"
    NO_DOCNO = "no_docno"
    NO_TREC_RECORDS = "no_trec_records"
    UNDECODABLE = "undecodable"  # kept: bytes not valid in the encoding were replaced
    DUPLICATE_ID = "duplicate_id"  # kept: both documents are indexed

    @property
    def code(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def kept(self) -> bool:
        return self in (SkipReason.UNDECODABLE, SkipReason.DUPLICATE_ID)


_LABELS = {
    SkipReason.UNREADABLE: "unreadable",
    SkipReason.NOT_REGULAR_FILE: "not a regular file",
    SkipReason.BINARY: "binary (NUL bytes)",
    SkipReason.EMPTY: "empty",
    SkipReason.INVALID_JSON: "not valid JSON",
    SkipReason.NOT_JSON_OBJECT: "not a JSON object",
    SkipReason.NO_ID: "no id field",
    SkipReason.NO_TEXT: "no text field",
    SkipReason.UNCLOSED_TREC_RECORD: "TREC record without </DOC>",
    SkipReason.NO_DOCNO: "no DOCNO",
    SkipReason.NO_TREC_RECORDS: "no <DOC> records",
    SkipReason.UNDECODABLE: "bytes not in the encoding (replaced)",
    SkipReason.DUPLICATE_ID: "duplicate id",
}

Where = str | Callable[[], str]  # a location, or a function computing it only when it is shown


class SkipLog:
    """Counts skipped or repaired input by reason and keeps the first few places of each."""

    EXAMPLES = EXAMPLES_PER_REASON

    def __init__(self) -> None:
        self.counts: dict[SkipReason, int] = {}
        self.examples: dict[SkipReason, list[str]] = {}

    def add(self, reason: SkipReason, where: Where) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < self.EXAMPLES:
            examples.append(where() if callable(where) else where)


class StrictLog(SkipLog):
    """A SkipLog stand-in for --strict: the first problem is an error."""

    def add(self, reason: SkipReason, where: Where) -> None:
        raise CorpusError(strict_message(reason, where() if callable(where) else where))


def strict_message(reason: SkipReason, where: str) -> str:
    return f"{where}: {reason.label}; --strict stops at any skipped or repaired input: fix it or build without --strict"
