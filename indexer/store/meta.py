"""Meta: what an index holds and how it was made, as typed records (the commit's JSON on disk).

The analyzer settings are kept as plain data (a dict), so that the store layer needs neither the
analyzer nor the scorer; search builds its Analyzer from them. `ReadInfo` and `CorpusInfo` record
how the corpus was found and read, so that snippets read documents back the same way and
`indexer update` finds the same files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class ReadInfo:
    """How documents were read (the build's ReadOptions, as data)."""

    format: str = "auto"
    id_fields: tuple[str, ...] = ("id", "_id", "docid")
    text_fields: tuple[str, ...] = ("title", "text", "contents")
    encoding: str = "utf-8"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class CorpusInfo:
    """What was indexed: the corpus paths as given, made absolute (how the work was cut, the
    chunk size or the process count, is not recorded: it never changes the index)."""

    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class SegmentEntry:
    """Where a segment lies in the file and what of it is live."""

    offset: int
    length: int
    documents: int  # all its documents, deleted ones included
    deleted: int  # how many of them are deleted
    live_tokens: int  # the sum of the live documents' lengths
    bytes: int = 0  # the segment's size on disk (its length; kept apart for stats)


@dataclass(frozen=True)
class IndexMeta:
    """The commit record: index-wide settings and the table of segments."""

    analyzer: dict  # indexer.analysis.AnalyzerConfig.to_dict()
    positions: bool
    read: ReadInfo = ReadInfo()
    corpus: CorpusInfo = CorpusInfo()
    generation: int = 1  # counts commits: 1 for a fresh build
    segments: tuple[SegmentEntry, ...] = ()
    skipped: dict[str, int] = field(default_factory=dict)  # skip reason code -> inputs, last build or update

    @property
    def documents(self) -> int:
        """Live documents."""
        return sum(s.documents - s.deleted for s in self.segments)

    @property
    def tokens(self) -> int:
        """The sum of the live documents' lengths."""
        return sum(s.live_tokens for s in self.segments)

    def to_json(self) -> bytes:
        """UTF-8 JSON, keys sorted: the same meta always gives the same bytes."""
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> IndexMeta:
        """Raises ValueError (or KeyError, TypeError) when the JSON is not a meta record."""
        raw = json.loads(data)
        return cls(
            analyzer=dict(raw["analyzer"]),
            positions=bool(raw["positions"]),
            read=_record(ReadInfo, raw.get("read", {})),
            corpus=_record(CorpusInfo, raw.get("corpus", {})),
            generation=int(raw.get("generation", 1)),
            segments=tuple(_record(SegmentEntry, s) for s in raw["segments"]),
            skipped={str(k): int(v) for k, v in raw.get("skipped", {}).items()},
        )


def _record(cls, raw: dict):
    known = {f.name for f in fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in known})
