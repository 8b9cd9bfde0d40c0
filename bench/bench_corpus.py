"""Benchmark corpora as the peer tools see them: (doc id, text) pairs and lower-cased \\w+ words.

A corpus is a folder of text files, read in the order indexer's folder reader uses, or a JSONL file
of {"id", "text"} records (our reader also takes a "title"; bench/get_kernel_docs.py writes none).
Doc ids match indexer's: the path relative to the folder, or the record's id. Used by the scripts
that feed tantivy and bm25s (bench/tantivy_build.py, bench/bm25s_build.py) and by
bench/make_queries.py, so every tool indexes the very same documents.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

# indexer's analyzer with --stem none: lower-case, then \w+ (it also applies NFKC, a no-op on
# almost all of this text)
WORD_RE = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The text's lower-cased \\w+ words, in order."""
    return WORD_RE.findall(text.lower())


def corpus_files(root: Path) -> list[str]:
    """Paths below root relative to it, in the order indexer's folder reader uses (os.walk with
    sorted names, a folder's files before its subfolders, hidden names left out)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        prefix = Path(folder).relative_to(root).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        found.extend(prefix + name for name in sorted(files) if not name.startswith("."))
    return found


def read_docs(corpus: Path) -> Iterator[tuple[str, str]]:
    """(doc id, text) of each document of a corpus folder or JSONL file, in indexer's order.

    Raises UnicodeDecodeError for a file that is not UTF-8 (the kernel corpus has none)."""
    corpus = Path(corpus)
    if corpus.is_dir():
        for rel in corpus_files(corpus):
            yield rel, (corpus / rel).read_text(encoding="utf-8")
        return
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                yield str(record["id"]), " ".join(record[k] for k in ("title", "text") if record.get(k))


def corpus_name(corpus: Path) -> str:
    """kernel-docs for bench/data/kernel-docs, kernel-docs-x10 for .../kernel-docs-x10.jsonl."""
    name = Path(corpus).resolve().name
    return name[: -len(".jsonl")] if name.endswith(".jsonl") else name
