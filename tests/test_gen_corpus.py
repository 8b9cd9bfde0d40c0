"""Tests for bench/gen_corpus.py (loaded by file path: bench/ is not a package)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gen_corpus.py"
_spec = importlib.util.spec_from_file_location("gen_corpus", SCRIPT)
gen_corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_corpus)

SIZE = 200 * 1024


def corpus_files(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every generated file (the .done marker excluded)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".done"
    }


@pytest.mark.parametrize("fmt", ["text", "jsonl"])
def test_same_seed_gives_identical_bytes(tmp_path, fmt):
    gen_corpus.generate(tmp_path / "a", SIZE, seed=3, fmt=fmt)
    gen_corpus.generate(tmp_path / "b", SIZE, seed=3, fmt=fmt)
    a, b = corpus_files(tmp_path / "a"), corpus_files(tmp_path / "b")
    assert a and a == b
    gen_corpus.generate(tmp_path / "c", SIZE, seed=4, fmt=fmt)
    assert corpus_files(tmp_path / "c") != a


def test_output_does_not_depend_on_thread_count(tmp_path, monkeypatch):
    size = 12 * 1024 * 1024  # several batches, so threads really run concurrently
    gen_corpus.generate(tmp_path / "many", size, fmt="jsonl")
    monkeypatch.setattr(gen_corpus.os, "cpu_count", lambda: 1)
    gen_corpus.generate(tmp_path / "one", size, fmt="jsonl")
    assert corpus_files(tmp_path / "many") == corpus_files(tmp_path / "one")


@pytest.mark.parametrize("fmt", ["text", "jsonl"])
def test_total_size_close_to_request(tmp_path, fmt):
    gen_corpus.generate(tmp_path, SIZE, fmt=fmt)
    total = sum(len(data) for data in corpus_files(tmp_path).values())
    assert abs(total - SIZE) <= 0.1 * SIZE


def test_text_layout(tmp_path):
    gen_corpus.generate(tmp_path, SIZE, fmt="text")
    files = corpus_files(tmp_path)
    assert len(files) > 5
    for name, data in files.items():
        folder, fname = name.split("/")
        assert folder.isdigit() and fname.startswith("doc-") and fname.endswith(".txt")
        title, _, body = data.decode("ascii").partition("\n\n")
        assert title and "\n" not in title and body.endswith(".\n")


def test_jsonl_parses_line_by_line(tmp_path):
    gen_corpus.generate(tmp_path, SIZE, fmt="jsonl")
    ids = []
    for name, data in corpus_files(tmp_path).items():
        assert name.startswith("part-") and name.endswith(".jsonl")
        for line in data.decode("utf-8").splitlines():
            doc = json.loads(line)
            assert set(doc) == {"id", "title", "text"}
            assert doc["title"] and doc["text"]
            ids.append(doc["id"])
    assert len(ids) > 10 and len(set(ids)) == len(ids) and ids[0] == "d000001"


def test_reuse_marker(tmp_path, capsys):
    out = tmp_path / "corpus"
    gen_corpus.generate(out, SIZE, seed=1)
    first, marker = corpus_files(out), out / ".done"
    stamp = marker.stat().st_mtime_ns
    capsys.readouterr()
    gen_corpus.generate(out, SIZE, seed=1)
    assert "reusing" in capsys.readouterr().err
    assert marker.stat().st_mtime_ns == stamp and corpus_files(out) == first
    # other parameters: the old corpus is replaced, neither reused nor mixed in
    gen_corpus.generate(out, SIZE // 2, seed=2)
    assert "reusing" not in capsys.readouterr().err
    gen_corpus.generate(tmp_path / "fresh", SIZE // 2, seed=2)
    assert corpus_files(out) == corpus_files(tmp_path / "fresh")


def test_cli_and_size_parsing(tmp_path):
    assert gen_corpus.parse_size("512KB") == 512 * 1024
    assert gen_corpus.parse_size("200MB") == 200 * 1024**2
    assert gen_corpus.parse_size("1GB") == 1024**3
    assert gen_corpus.parse_size("12345") == 12345
    cmd = [sys.executable, str(SCRIPT), str(tmp_path), "--size", "64KB", "--format", "jsonl"]
    run = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert run.stdout == "" and (tmp_path / ".done").is_file()
    run = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "reusing" in run.stderr
