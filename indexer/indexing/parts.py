"""Range parts: the encoded output of one term range of the merge, until the writer joins them.

A part is a folder: `data.bin`, the encoded data of its terms one after another in term order
(store.codec's layout), and `terms.npz`, the terms' UTF-8 bytes (lengths and one blob) and each
term's data length. The writer copies the parts' data one after another into the segment's
postings section, so parts in term order make one index.
"""

from __future__ import annotations

import os

import numpy as np

from indexer.store.codec import EncodedTerms, TermEncoder
from indexer.store.segment import TermPart


class PartWriter:
    """The encoded output of one range: term data appended batch by batch, the term list at `close`."""

    def __init__(self, path: str):
        os.makedirs(path, exist_ok=True)  # a task rerun after its worker died overwrites the dead attempt's files
        self.path = path
        self._data = open(os.path.join(path, "data.bin"), "wb")
        self._lengths: list[np.ndarray] = []
        self.positions_bytes = 0

    def append(self, encoded: EncodedTerms) -> None:
        encoded.data.tofile(self._data)
        self._lengths.append(encoded.lengths)
        self.positions_bytes += encoded.positions_bytes

    def heavy_term(self, doc_lengths: np.ndarray, positions: bool) -> _HeavyTerm:
        """An encoder for one term too big to hold: feed it pieces, then `finish()` it."""
        return _HeavyTerm(self, doc_lengths, positions)

    def close(self, terms: list[str]) -> None:
        self._data.close()
        encoded = [t.encode("utf-8") for t in terms]
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        np.savez(
            os.path.join(self.path, "terms.npz"),
            term_lengths=np.fromiter(map(len, encoded), np.int64, len(encoded)),
            terms=np.frombuffer(b"".join(encoded), dtype=np.uint8),
            data_lengths=lengths,
            positions_bytes=np.array([self.positions_bytes], dtype=np.int64),
        )


class _HeavyTerm:
    """A term's blocks and positions spooled to two files as they are encoded, then written after
    its header: memory holds a block's worth of postings, whatever the term's df."""

    def __init__(self, part: PartWriter, doc_lengths: np.ndarray, positions: bool):
        self._part = part
        names = ("heavy-blocks.bin", "heavy-positions.bin")
        self._spools = [open(os.path.join(part.path, name), "w+b") for name in names]
        self.encoder = TermEncoder(doc_lengths, positions, self._spools[0].write, self._spools[1].write)

    def feed(self, docs, tfs, positions) -> None:
        self.encoder.feed(docs, tfs, positions)

    def finish(self) -> None:
        head, post_bytes, pos_bytes = self.encoder.finish()
        out = self._part._data
        out.write(head)
        for spool in self._spools:
            spool.seek(0)
            while block := spool.read(8 << 20):
                out.write(block)
            spool.close()
            os.unlink(spool.name)
        self._part._lengths.append(np.array([len(head) + post_bytes + pos_bytes], dtype=np.int64))
        self._part.positions_bytes += pos_bytes


def read_part(path: str) -> tuple[TermPart, int]:
    """A written part as the segment writer takes it (its data copied from the file), and how many
    of its data bytes are positions."""
    with np.load(os.path.join(path, "terms.npz")) as arrays:
        part = TermPart(
            arrays["term_lengths"], arrays["terms"], arrays["data_lengths"], [os.path.join(path, "data.bin")]
        )
        return part, int(arrays["positions_bytes"][0])
