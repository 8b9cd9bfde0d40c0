"""The same input gives the same index, byte for byte, whatever the code's layout: digests of the
index files of sample_corpus, the golden corpus and a seeded random corpus, pinned when format 2
was written, must not change while code only moves or gets faster. The sections that record where
the files are and when they were last changed (paths, mtimes: they depend on where and when the
tests run), the page checksums over them and the commit record (it names the corpus path) are left
out; everything the index says about the documents' contents is in."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import random_docs, write_corpus

from indexer.indexing.pipeline import BuildOptions, build_index
from indexer.store.index import IndexReader
from indexer.store.segment import FILE_NAME_OFFSETS, FILE_NAMES, FILES, PAGES

ROOT = Path(__file__).resolve().parents[1]
LEFT_OUT = {FILES, FILE_NAME_OFFSETS, FILE_NAMES, PAGES}

EXPECTED = {
    "sample_corpus": "e3dc19de0905e410feaef34e4f8ab006637d2b57000fdfc6c9124f5251e8fcb7",
    "golden_corpus": "ea49ee231bff2d92139ada2b2976ba51066b312d41f72c363031523c51c6c5b7",
    "random": "d6465caea65a91061f6c9655c95e4d37a3dfd3e548d8e59e4c7961a70ca58056",
}


def digest(index: Path) -> str:
    out = hashlib.sha256()
    with IndexReader(index) as reader:
        segment = reader.segments[0]
        for kind, (offset, size, _) in sorted(segment.sections.items()):
            if kind not in LEFT_OUT:
                out.update(kind.to_bytes(4, "little") + segment.buf[offset : offset + size].tobytes())
    return out.hexdigest()


def corpus(name: str, tmp_path: Path) -> Path:
    if name == "sample_corpus":
        return ROOT / "sample_corpus"
    if name == "golden_corpus":
        return ROOT / "tests" / "data" / "golden_corpus"
    return write_corpus(tmp_path / "random", random_docs(seed=13, count=120, max_words=200))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_index_bytes_do_not_change_when_code_only_moves(tmp_path, name):
    out = tmp_path / f"{name}.idx"
    build_index([corpus(name, tmp_path)], out, BuildOptions(processes=1))
    assert digest(out) == EXPECTED[name]
