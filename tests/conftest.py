"""Shared fixtures: tiny corpora written into tmp_path, built indexes, a CLI runner."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.analysis import AnalyzerConfig
from indexer.indexing.pipeline import BuildOptions, build_index

# a real (small) index: builds refuse to replace files that are not indexes
PREVIOUS_INDEX = (Path(__file__).parent / "data" / "golden-v1.idx").read_bytes()
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

WORDS = [
    "index",
    "merge",
    "sort",
    "parallel",
    "search",
    "query",
    "term",
    "posting",
    "run",
    "chunk",
    "worker",
    "process",
    "memory",
    "disk",
    "river",
    "bread",
    "engine",
    "café",
    "Über",
    "naïve",
    "RUN",
    "running",
    "runs",
    "the",
    "a",
    "of",
    "and",
    "to",
]


def write_corpus(root: Path, docs: dict[str, str]) -> Path:
    """Write {relative path: text} under root and return root."""
    for name, text in docs.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def random_docs(seed: int, count: int, max_words: int = 60, vocab=WORDS) -> dict[str, str]:
    """Seeded random documents spread over a few sub-folders, with punctuation and case."""
    rng = random.Random(seed)
    docs = {}
    for i in range(count):
        folder = rng.choice(["", "a/", "b/", "a/deep/"])
        words = [rng.choice(vocab) for _ in range(rng.randint(1, max_words))]
        text = " ".join(w.capitalize() if rng.random() < 0.1 else w for w in words)
        docs[f"{folder}doc{i:03d}.txt"] = text + rng.choice([".", "!", "\n", ""])
    return docs


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def small_corpus(tmp_path) -> Path:
    return write_corpus(tmp_path / "corpus", random_docs(seed=7, count=40))


@pytest.fixture
def small_index(tmp_path, small_corpus) -> Path:
    out = tmp_path / "small.idx"
    build_index([small_corpus], out, BuildOptions(processes=1, analyzer=AnalyzerConfig(stem="none")))
    return out
