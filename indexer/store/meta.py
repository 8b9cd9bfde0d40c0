"""Meta: what an index holds and how it was made, as typed records (the meta section, JSON on disk).

The analyzer settings are kept as plain data (a dict), so that the store layer needs neither the
analyzer nor the scorer; search builds its Analyzer from them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ReadInfo:
    """How documents were read, so that snippets read them back the same way."""

    id_fields: tuple[str, ...] = ("id", "_id", "docid")
    text_fields: tuple[str, ...] = ("title", "text", "contents")
    encoding: str = "utf-8"


@dataclass(frozen=True)
class IndexMeta:
    documents: int
    terms: int
    postings: int
    tokens: int  # the sum of the document lengths
    positions: bool
    analyzer: dict  # indexer.analysis.AnalyzerConfig.to_dict()
    source_files: int
    skipped: dict[str, int] = field(default_factory=dict)  # skip reason code -> inputs
    read: ReadInfo = ReadInfo()

    def to_json(self) -> bytes:
        """UTF-8 JSON, keys sorted: the same meta always gives the same bytes."""
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> IndexMeta:
        """Raises ValueError (or KeyError, TypeError) when the JSON is not a meta record."""
        raw = json.loads(data)
        read = raw.get("read") or {}
        return cls(
            documents=int(raw["documents"]),
            terms=int(raw["terms"]),
            postings=int(raw["postings"]),
            tokens=int(raw["tokens"]),
            positions=bool(raw["positions"]),
            analyzer=dict(raw["analyzer"]),
            source_files=int(raw["source_files"]),
            skipped={str(k): int(v) for k, v in raw.get("skipped", {}).items()},
            read=ReadInfo(**{k: tuple(v) if isinstance(v, list) else v for k, v in read.items()}),
        )
