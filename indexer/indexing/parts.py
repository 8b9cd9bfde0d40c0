"""Range parts: the encoded output of one term range of the merge, until the writer joins them.

A part is a folder: the encoded byte streams of its terms (`docs.bin`, `freqs.bin`,
`positions.bin`, appended batch by batch in term order) and per-term arrays (`term_lengths`,
`terms`, `info`: df and the byte lengths of each term in the three streams). The writer copies the
parts' streams one after another into the index file, so parts in term order make one index.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from indexer.store.codec import EncodedPostings, encode_strings, encode_varints

STREAMS = ("docs", "freqs", "positions")


class PartWriter:
    """The encoded output of one range: byte streams appended batch by batch, per-term info at the end."""

    def __init__(self, path: str):
        os.makedirs(path, exist_ok=True)  # a task rerun after its worker died overwrites the dead attempt's files
        self.path = path
        self._files = {name: open(os.path.join(path, name + ".bin"), "wb") for name in STREAMS}

    def append(self, encoded: EncodedPostings) -> None:
        for name in STREAMS:
            getattr(encoded, name).tofile(self._files[name])

    def close(self, terms: list[str], info: np.ndarray) -> None:
        """Close the streams and write the per-term arrays: the terms, and `info` (df, docs, freqs
        and positions byte lengths per term)."""
        for f in self._files.values():
            f.close()
        lengths, blob = encode_strings(terms)
        for name, values in {"term_lengths": lengths, "terms": np.frombuffer(blob, dtype=np.uint8)}.items():
            np.save(os.path.join(self.path, name + ".npy"), values)
        np.save(os.path.join(self.path, "info.npy"), encode_varints(info.ravel()))


def part_arrays(path: str) -> dict[str, np.ndarray]:
    """The per-term arrays of a written part: term_lengths, terms and info."""
    return {p.stem: np.load(p) for p in Path(path).glob("*.npy")}


def part_stream(path: str, name: str) -> str:
    """The file holding one of a part's STREAMS."""
    return os.path.join(path, name + ".bin")
