"""The same input gives the same index, byte for byte, whatever the code's layout: digests of the
index files of sample_corpus, the golden corpus and a seeded random corpus, taken before the
package was re-laid into folders (issue 13), must not change while code only moves. The source
file table is left out: it holds absolute paths, which depend on where the tests run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import random_docs, write_corpus

from indexer.indexing.pipeline import BuildOptions, build_index
from indexer.store.index import SOURCE_FILES, IndexReader

ROOT = Path(__file__).resolve().parents[1]

EXPECTED = {
    "sample_corpus": "cd32e826c6534c82867b25453de44c359e7430d4cd6d740ba78976183aceba1e",
    "golden_corpus": "f6a4660a087963e66d614938ec45f0d74a660b3349cf0c1df2c1b235223bacf6",
    "random": "921cf81f566314f1899d31874de0920aefe5b375cebf2cd17105ad97079f1d7d",
}


def _digest(index: Path) -> str:
    digest = hashlib.sha256()
    with IndexReader(index) as reader:
        data = index.read_bytes()
        for kind, section in sorted(reader.sections.items()):
            if kind != SOURCE_FILES:
                digest.update(kind.to_bytes(4, "little") + data[section.offset : section.offset + section.length])
    return digest.hexdigest()


def _corpus(name: str, tmp_path: Path) -> Path:
    if name == "sample_corpus":
        return ROOT / "sample_corpus"
    if name == "golden_corpus":
        return ROOT / "tests" / "data" / "golden_corpus"
    return write_corpus(tmp_path / "random", random_docs(seed=13, count=120, max_words=200))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_index_bytes_do_not_change_when_code_only_moves(tmp_path, name):
    out = tmp_path / f"{name}.idx"
    build_index([_corpus(name, tmp_path)], out, BuildOptions(processes=1))
    assert _digest(out) == EXPECTED[name]
