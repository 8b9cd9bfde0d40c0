"""Corpus: discovery, formats (text, JSONL, TREC, gzip), byte-range splitting and bad input.

Oracles: the same documents in every format give the same postings; a file cut into many byte
ranges gives the same index, byte for byte, as the file read whole; every record of a file is read
exactly once whatever the cut points. Bad input goes through the CLI, as a user meets it.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import PREVIOUS_INDEX, random_docs, write_corpus

from indexer.analysis import AnalyzerConfig
from indexer.cli import cli
from indexer.corpus import readers
from indexer.corpus.discover import plan_corpus
from indexer.corpus.readers import ReadOptions, read_piece, read_source
from indexer.corpus.skips import SkipLog, SkipReason
from indexer.errors import CorpusError
from indexer.indexing.pipeline import BuildOptions, build_index
from indexer.store.index import IndexReader

NO_STEM = AnalyzerConfig(stem="none")


def _docs(seed: int = 11, count: int = 30, max_words: int = 60) -> dict[str, str]:
    """{id: text}: random texts (with non-ASCII words) under ids without a folder or suffix."""
    texts = random_docs(seed=seed, count=count, max_words=max_words).values()
    return {f"d{i:03d}": text for i, text in enumerate(texts)}


def _jsonl(docs: dict[str, str]) -> bytes:
    return b"".join(json.dumps({"id": k, "text": v}).encode() + b"\n" for k, v in docs.items())


def _trec(docs: dict[str, str]) -> bytes:
    records = (f"<DOC>\n<DOCNO> {k} </DOCNO>\n<TEXT>\n{v}\n</TEXT>\n</DOC>\n" for k, v in docs.items())
    return "".join(records).encode()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path


def _build(paths, out: Path, **options) -> Path:
    options.setdefault("processes", 1)
    options.setdefault("analyzer", NO_STEM)
    build_index([Path(p) for p in paths], out, BuildOptions(**options))
    return out


def _contents(index: Path) -> tuple[dict, dict]:
    """(doc length by id, {term: {id: (tf, positions)}}), ids with .gz and .txt dropped."""
    with IndexReader(index) as reader:
        names = [n.removesuffix(".gz").removesuffix(".txt") for n in reader.doc_names()]
        lengths = dict(zip(names, reader.doc_lengths.tolist()))
        postings = {}
        for term in reader.terms():
            found = reader.postings(term)
            offsets, positions = found.positions()
            postings[term] = {
                names[d]: (tf, positions[offsets[i] : offsets[i + 1]].tolist())
                for i, (d, tf) in enumerate(zip(found.docs.tolist(), found.tfs.tolist()))
            }
    return lengths, postings


def _all_records(path: Path, chunk_size: int) -> list[tuple[str, int, int]]:
    options = ReadOptions()
    plan = plan_corpus([path], chunk_size, options)
    log = SkipLog()
    docs = [(d.name, d.offset, d.length) for c in plan.chunks for p in c.pieces for d in read_piece(p, options, log)]
    assert log.counts == {}
    return docs


# ---------------------------------------------------------------------------------------------
# Formats


def test_every_format_gives_the_same_postings(tmp_path):
    docs = _docs()
    text_dir = write_corpus(tmp_path / "text", {f"{k}.txt": v for k, v in docs.items()})
    for k, v in docs.items():
        _write(tmp_path / "textgz" / f"{k}.txt.gz", v.encode())
    sources = {
        "text": text_dir,
        "text.gz": tmp_path / "textgz",
        "jsonl": _write(tmp_path / "c.jsonl", _jsonl(docs)),
        "jsonl.gz": _write(tmp_path / "c.jsonl.gz", _jsonl(docs)),
        "ndjson": _write(tmp_path / "c.ndjson", _jsonl(docs)),
        "trec": _write(tmp_path / "c.trec", _trec(docs)),
        "trec.gz": _write(tmp_path / "c.trec.gz", _trec(docs)),
        "sgml": _write(tmp_path / "c.sgml", _trec(docs)),
        "trec by content": _write(tmp_path / "LA010189", _trec(docs)),
        "trec.gz by content": _write(tmp_path / "fr940104.gz", _trec(docs)),
    }
    expected = _contents(_build([text_dir], tmp_path / "text.idx"))
    assert len(expected[0]) == len(docs) and len(expected[1]) > 20
    for name, source in sources.items():
        got = _contents(_build([source], tmp_path / f"{name}.idx"))
        assert got[0] == expected[0], name
        assert got[1] == expected[1], name


@pytest.mark.parametrize("fmt", ["jsonl", "trec"])
@pytest.mark.parametrize("processes", [1, 2])
def test_byte_ranges_give_the_same_index_as_one_piece(tmp_path, fmt, processes):
    docs = _docs(seed=3, count=40, max_words=80)
    data = _jsonl(docs) if fmt == "jsonl" else _trec(docs)
    source = _write(tmp_path / f"c.{fmt}", data)
    assert len(plan_corpus([source], 500).chunks) > 20  # many ranges, most cutting a record
    whole = _build([source], tmp_path / "whole.idx", chunk_size=1 << 30)
    split = _build([source], tmp_path / "split.idx", chunk_size=500, processes=processes)
    assert split.read_bytes() == whole.read_bytes()
    with IndexReader(whole) as reader:
        assert reader.doc_names() == list(docs)


@pytest.mark.parametrize("fmt", ["jsonl", "trec"])
@pytest.mark.parametrize("block", [3, 1 << 20])  # read blocks that cut every tag, or none
def test_each_record_is_read_once_wherever_the_ranges_cut(tmp_path, monkeypatch, fmt, block):
    monkeypatch.setattr(readers, "READ_BLOCK", block)
    rng = random.Random(5)
    docs = {f"r{i}": " ".join(rng.choice(["ab", "c", "déf"]) for _ in range(rng.randint(1, 12))) for i in range(25)}
    data = _jsonl(docs) if fmt == "jsonl" else _trec(docs)
    if fmt == "jsonl":
        data = data.replace(b"\n", b"\r\n", 7).replace(b"\r\n", b"\n\n\n", 1)  # CRLF and blank lines
    source = _write(tmp_path / f"c.{fmt}", data)
    expected = _all_records(source, len(data) + 1)
    assert [name for name, _, _ in expected] == list(docs)
    for chunk_size in [1, 2, 3, 5, 7, 11, 17, 31, 64, 100, 257]:
        assert _all_records(source, chunk_size) == expected, chunk_size


@pytest.mark.parametrize("fmt", ["jsonl", "trec"])
def test_a_record_of_megabytes_does_not_break_the_split(tmp_path, fmt):
    docs = _docs(seed=4, count=20)
    big = " ".join(["river"] * 300_000 + ["zebra"])  # ~1.8 MB on one line
    docs = {**dict(list(docs.items())[:10]), "big": big, **dict(list(docs.items())[10:])}
    source = _write(tmp_path / f"c.{fmt}", _jsonl(docs) if fmt == "jsonl" else _trec(docs))
    whole = _build([source], tmp_path / "whole.idx", chunk_size=1 << 30)
    split = _build([source], tmp_path / "split.idx", chunk_size=64 << 10)
    assert split.read_bytes() == whole.read_bytes()
    with IndexReader(split) as reader:
        assert reader.doc_names() == list(docs)
        big_doc = reader.doc_names().index("big")
        assert reader.doc_lengths[big_doc] == 300_001
        assert reader.postings("zebra").docs.tolist() == [big_doc]


def test_source_offsets_read_the_record_back(tmp_path):
    docs = _docs(seed=8, count=12)
    sources = [
        _write(tmp_path / "c" / "a.jsonl", _jsonl(dict(list(docs.items())[:6]))),
        _write(tmp_path / "c" / "b.trec.gz", _trec(dict(list(docs.items())[6:]))),
        _write(tmp_path / "c" / "z.txt.gz", b"plain gzip text"),
    ]
    index = _build([tmp_path / "c"], tmp_path / "x.idx", chunk_size=100)
    with IndexReader(index) as reader:
        assert reader.doc_count == 13
        for doc, name in enumerate(reader.doc_names()):
            path, offset, length, crc, _ = reader.doc_source(doc)
            record = read_source(path, offset, length)
            assert zlib.crc32(record) == crc
            if path == str(sources[0]):
                assert json.loads(record) == {"id": name, "text": docs[name]}
            elif path == str(sources[1]):
                assert record.startswith(b"<DOC>\n<DOCNO> " + name.encode()) and record.endswith(b"</DOC>")
                assert docs[name].encode() in record
            else:
                assert (name, record) == ("z.txt.gz", b"plain gzip text")


def test_trec_records_lose_tags_and_docno_and_decode_entities(tmp_path):
    data = (
        b"<DOC>\n<DOCNO>FT-1</DOCNO>\n<HEADLINE>Tea &amp; toast</HEADLINE>\n<TEXT>river<P>bank</P></TEXT>\n</DOC>\n"
        b"<DOC><DOCNO>FT-2</DOCNO>\n</DOC>\n"  # nothing but the DOCNO: empty
        b"<DOC>\n<TEXT>no docno here</TEXT>\n</DOC>\n"
        b"<DOC>\n<DOCNO>FT-4</DOCNO> never closed\n"
        b"<doc><docno>ft-5</docno>lower case tags</doc>\n"
    )
    source = _write(tmp_path / "c.trec", data)
    log = SkipLog()
    plan = plan_corpus([source], 1 << 20)
    docs = [d for p in plan.chunks[0].pieces for d in read_piece(p, ReadOptions(), log)]
    assert [d.name for d in docs] == ["FT-1", "ft-5"]
    assert docs[0].text.split() == ["Tea", "&", "toast", "river", "bank"]
    assert {r.code: n for r, n in log.counts.items()} == {"empty": 1, "no_docno": 1, "unclosed_trec_record": 1}
    assert log.examples[SkipReason.NO_DOCNO] == [f"{source}:8"]


def test_jsonl_id_and_text_fields_can_be_chosen(tmp_path):
    rows = [{"docid": 7, "title": "Title words", "body": "body words", "text": "other"}, {"_id": "b", "body": "x"}]
    source = _write(tmp_path / "c.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    out = _build([source], tmp_path / "x.idx", read=ReadOptions(text_fields=("title", "body")))
    with IndexReader(out) as reader:
        assert reader.doc_names() == ["7", "b"]
        assert reader.terms() == ["body", "title", "words", "x"]
    out = _build([source], tmp_path / "y.idx", read=ReadOptions(id_fields=("_id",), text_fields=("body",)))
    with IndexReader(out) as reader:
        assert reader.doc_names() == ["b"]


def test_format_option_overrides_the_extension(tmp_path):
    source = _write(tmp_path / "c.jsonl", _jsonl({"a": "one", "b": "two"}))
    out = _build([source], tmp_path / "x.idx", read=ReadOptions(format="text"))
    with IndexReader(out) as reader:
        assert reader.doc_names() == ["c.jsonl"]
        assert "id" in reader.terms()


# ---------------------------------------------------------------------------------------------
# Discovery


def test_include_and_exclude_match_relative_paths_and_names(tmp_path, runner):
    corpus = write_corpus(
        tmp_path / "c",
        {"a.txt": "x", "a.md": "x", "notes/b.txt": "x", "notes/drafts/c.txt": "x", "build/d.txt": "x", "e.log": "x"},
    )

    def names(*args):
        out = tmp_path / "x.idx"
        result = runner.invoke(cli, ["build", str(corpus), "-o", str(out), "-p", "1", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        with IndexReader(out) as reader:
            return sorted(reader.doc_names())

    assert names("--include", "*.txt") == ["a.txt", "build/d.txt", "notes/b.txt", "notes/drafts/c.txt"]
    assert names("--include", "notes/*") == ["notes/b.txt", "notes/drafts/c.txt"]  # * crosses /
    assert names("--exclude", "*.txt", "--exclude", "*.log") == ["a.md"]
    assert names("--exclude", "build", "--exclude", "drafts") == ["a.md", "a.txt", "e.log", "notes/b.txt"]
    assert names("--include", "*.txt", "--exclude", "notes/*") == ["a.txt", "build/d.txt"]


def test_symlink_loops_do_not_trap_the_walk(tmp_path, runner):
    corpus = write_corpus(tmp_path / "c", {"a.txt": "alpha", "sub/b.txt": "beta"})
    os.symlink(corpus, corpus / "sub" / "loop")  # a folder link back up: not followed
    os.symlink("self", corpus / "self")  # a link to itself: ELOOP when read
    os.symlink(corpus / "a.txt", corpus / "sub" / "link.txt")  # a file link: followed
    out = tmp_path / "x.idx"
    result = runner.invoke(cli, ["build", str(corpus), "-o", str(out), "-p", "1", "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    stats = json.loads(result.stdout)
    assert stats["documents"] == 3
    assert stats["skipped_by_reason"] == {"unreadable": 1}
    assert stats["skipped_examples"]["unreadable"][0].startswith(f"{corpus / 'self'} (")
    with IndexReader(out) as reader:
        assert sorted(reader.doc_names()) == ["a.txt", "sub/b.txt", "sub/link.txt"]
    result = runner.invoke(cli, ["build", str(corpus), "-o", str(tmp_path / "y.idx"), "-p", "1", "--strict"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {corpus / 'self'} (Too many levels of symbolic links): unreadable;")
    assert not (tmp_path / "y.idx").exists()


def test_a_file_that_vanishes_after_planning_is_counted_unreadable(tmp_path):
    corpus = write_corpus(tmp_path / "c", {"a.txt": "alpha", "b.jsonl": '{"id": 1, "text": "x"}\n'})
    plan = plan_corpus([corpus], 1 << 20)
    (corpus / "a.txt").unlink()
    (corpus / "b.jsonl").unlink()
    log = SkipLog()
    docs = [d for p in plan.chunks[0].pieces for d in read_piece(p, ReadOptions(), log)]
    assert docs == []
    assert log.counts == {SkipReason.UNREADABLE: 2}
    assert log.examples[SkipReason.UNREADABLE][0] == f"{corpus / 'a.txt'} (No such file or directory)"


def test_a_file_name_that_is_not_utf8_is_indexed_and_read_back(tmp_path, runner):
    corpus = tmp_path / "c"
    corpus.mkdir()
    raw = os.path.join(os.fsencode(corpus), b"caf\xff.txt")
    try:
        with open(raw, "wb") as f:
            f.write(b"beans and milk")
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    out = tmp_path / "x.idx"
    result = runner.invoke(cli, ["build", str(corpus), "-o", str(out), "-p", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    result = runner.invoke(cli, ["search", str(out), "beans"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "caf\\xff.txt" in result.stdout
    with IndexReader(out) as reader:
        assert reader.doc_names() == ["caf\\xff.txt"]
        path, offset, length, _, _ = reader.doc_source(0)
        assert os.fsencode(path) == raw
        assert read_source(path, offset, length) == b"beans and milk"


# ---------------------------------------------------------------------------------------------
# Bad input through the CLI


def _run(runner: CliRunner, corpus: Path, out: Path, *args: str, ok: bool = True):
    result = runner.invoke(cli, ["build", str(corpus), "-o", str(out), "-p", "1", *args], catch_exceptions=not ok)
    return result


def test_bad_jsonl_lines_are_skipped_with_file_and_line(tmp_path, runner):
    lines = [
        '{"id": "a", "text": "good one"}',
        "{not json",
        '{"text": "no id"}',
        '{"id": "c", "title": 3}',
        '["a", "list"]',
        '{"id": "d", "text": "   "}',
        "",
        '{"id": "e", "text": "good two"}',
    ]
    source = _write(tmp_path / "c" / "x.jsonl", "\n".join(lines).encode() + b"\n")
    out = tmp_path / "x.idx"
    result = _run(runner, tmp_path / "c", out, "--json")
    assert result.exit_code == 0
    stats = json.loads(result.stdout)
    assert stats["documents"] == 2
    assert stats["skipped_by_reason"] == {
        "empty": 1,
        "no_id": 1,
        "no_text": 1,
        "not_json_object": 1,
        "invalid_json": 1,
    }
    assert stats["skipped_examples"]["invalid_json"] == [f"{source}:2"]
    assert stats["skipped_examples"]["empty"] == [f"{source}:6"]
    result = _run(runner, tmp_path / "c", out)
    assert result.exit_code == 0 and result.stdout == ""
    assert f"Warning: 5 skipped: 1 empty (first: {source}:6)" in result.stderr
    assert f"1 no id field (first: {source}:3)" in result.stderr


def test_strict_fails_on_any_skip_and_writes_nothing(tmp_path, runner):
    corpus = write_corpus(tmp_path / "c", {"a.jsonl": '{"id": "a", "text": "fine"}\n{oops\n'})
    out = tmp_path / "x.idx"
    out.write_bytes(PREVIOUS_INDEX)
    result = _run(runner, corpus, out, "--strict", ok=False)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert (
        result.stderr == f"Error: {corpus / 'a.jsonl'}:2: not valid JSON; --strict stops at any skipped or "
        "repaired input: fix it or build without --strict\n"
    )
    assert out.read_bytes() == PREVIOUS_INDEX
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "x.idx"]  # no temporary files left


def test_strict_also_refuses_undecodable_bytes_but_not_a_declared_encoding(tmp_path, runner):
    corpus = tmp_path / "c"
    _write(corpus / "a.txt", "café crème".encode("latin-1"))
    out = tmp_path / "x.idx"
    result = _run(runner, corpus, out, "--json", ok=True)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["skipped_by_reason"] == {"undecodable": 1}
    assert _run(runner, corpus, out, "--strict", ok=False).exit_code == 1
    result = _run(runner, corpus, out, "--strict", "--encoding", "latin-1", "--stem", "none")
    assert result.exit_code == 0, result.stderr
    with IndexReader(out) as reader:
        assert reader.terms() == ["café", "crème"]
    result = _run(runner, corpus, out, "--encoding", "no-such-codec", ok=False)
    assert result.exit_code == 2  # a bad option value is a usage error
    assert "unknown encoding 'no-such-codec'" in result.stderr


def test_duplicate_ids_are_kept_and_counted_or_refused_with_strict(tmp_path, runner):
    corpus = tmp_path / "c"
    _write(corpus / "a.jsonl", _jsonl({"x": "first copy", "y": "other"}))
    _write(corpus / "b.jsonl", _jsonl({"x": "second copy"}))
    out = tmp_path / "x.idx"
    result = _run(runner, corpus, out, "--json", "--chunk-size", "20")
    assert result.exit_code == 0
    stats = json.loads(result.stdout)
    assert stats["documents"] == 3
    assert stats["skipped_by_reason"] == {"duplicate_id": 1}
    assert stats["skipped_examples"]["duplicate_id"] == ["x"]
    with IndexReader(out) as reader:
        assert reader.doc_names() == ["x", "y", "x"]
    result = _run(runner, corpus, out, "--strict", ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: 1 duplicate id (first: x); --strict")


def test_binary_empty_and_damaged_files_are_counted(tmp_path, runner):
    corpus = write_corpus(tmp_path / "c", {"good.txt": "hello", "blank.txt": " \n", "empty.jsonl": ""})
    _write(corpus / "prog.bin", b"\x7fELF\x00\x00\x01")
    _write(corpus / "blank.trec", b"\n\n")
    _write(corpus / "notrec.trec", b"just words, no records")
    one_long_record = _jsonl({"a": " ".join(_docs(count=50).values())})
    (corpus / "cut.jsonl.gz").write_bytes(gzip.compress(one_long_record)[:200])
    (corpus / "fake.txt.gz").write_bytes(b"not gzip at all")
    result = _run(runner, corpus, tmp_path / "x.idx", "--json")
    assert result.exit_code == 0
    stats = json.loads(result.stdout)
    assert stats["documents"] == 1
    assert stats["skipped_by_reason"] == {
        "binary": 1,
        "empty": 3,
        "no_trec_records": 1,
        "unreadable": 2,
    }
    assert stats["skipped"] == 7
    assert sorted(stats["skipped_examples"]["unreadable"])[0].startswith(f"{corpus / 'cut.jsonl.gz'} (")


def test_nothing_indexed_exits_1_with_the_reasons(tmp_path, runner):
    corpus = write_corpus(tmp_path / "c", {"a.txt": "", "b.jsonl": "{bad\n"})
    out = tmp_path / "x.idx"
    result = _run(runner, corpus, out, ok=False)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: nothing to index in {corpus}: 1 empty, 1 not valid JSON")
    assert not out.exists()
    result = _run(runner, corpus, out, "--include", "*.md", ok=False)
    assert result.exit_code == 1
    assert "nothing to index: no files found" in result.stderr


def test_max_term_length_is_saved_and_applied(tmp_path, runner):
    corpus = write_corpus(tmp_path / "c", {"a.txt": "short words and averyveryverylongword"})
    out = tmp_path / "x.idx"
    result = _run(runner, corpus, out, "--max-term-length", "10", "--stem", "none", "--stopwords", "english")
    assert result.exit_code == 0, result.stderr
    with IndexReader(out) as reader:
        assert reader.terms() == ["short", "words"]
    result = runner.invoke(cli, ["stats", str(out), "--json"], catch_exceptions=False)
    analyzer = json.loads(result.stdout)["analyzer"]
    assert (analyzer["max_term_chars"], analyzer["stem"], "and" in analyzer["stopwords"]) == (10, "none", True)
    result = runner.invoke(cli, ["search", str(out), "averyveryverylongword OR words"], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout.split()[-1] == "a.txt"


def test_strict_and_plain_json_builds_of_clean_input_agree(tmp_path, runner):
    corpus = _write(tmp_path / "c.trec.gz", _trec(_docs(seed=2, count=10)))
    a, b = tmp_path / "a.idx", tmp_path / "b.idx"
    assert _run(runner, corpus, a, "-q").exit_code == 0
    result = _run(runner, corpus, b, "--strict", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["skipped"] == 0
    assert a.read_bytes() == b.read_bytes()


def test_unknown_format_and_missing_paths_are_errors(tmp_path):
    with pytest.raises(CorpusError, match="unknown format 'xml'"):
        plan_corpus([tmp_path], 100, ReadOptions(format="xml"))
    with pytest.raises(CorpusError, match="no such file or folder"):
        plan_corpus([tmp_path / "nope"], 100)


def test_a_jsonl_file_with_a_byte_order_mark_keeps_its_first_record(tmp_path):
    from indexer.retrieval.searcher import Searcher, open_index

    corpus = _write(
        tmp_path / "bom.jsonl",
        b"\xef\xbb\xbf" + b'{"id": "first", "text": "alpha"}\n{"id": "second", "text": "beta"}\n',
    )
    out = _build([corpus], tmp_path / "x.idx")
    with IndexReader(out) as reader:
        assert reader.doc_names() == ["first", "second"]
    with open_index(out) as reader:
        hit = Searcher(reader).search("alpha", k=1, snippets=True).hits[0]
    assert hit.doc == "first" and hit.snippet.marked() == "**alpha**"


# ---------------------------------------------------------------------------------------------
# One document per line, and standard input


def _lines_text(seed: int = 8, count: int = 60) -> bytes:
    """Random lines with blank ones and CRLF endings among them, and no line break at the end."""
    rng = random.Random(seed)
    texts = list(random_docs(seed=seed, count=count, max_words=12).values())
    lines = [t.replace("\n", " ") if rng.random() > 0.15 else "   " for t in texts]
    data = "".join(line + ("\r\n" if i % 7 == 3 else "\n") for i, line in enumerate(lines))
    return data.rstrip("\r\n").encode()


def _expected_lines(data: bytes, name: str) -> list[str]:
    return [f"{name}:{n}" for n, line in enumerate(data.split(b"\n"), 1) if line.strip()]


@pytest.mark.parametrize("block", [2, 1 << 20])
def test_lines_are_documents_named_by_line_number_wherever_the_ranges_cut(tmp_path, monkeypatch, block):
    monkeypatch.setattr(readers, "READ_BLOCK", block)
    data = _lines_text()
    source = _write(tmp_path / "log.txt", data)
    expected = _expected_lines(data, "log.txt")
    options = ReadOptions(format="lines")
    for chunk_size in [1, 3, 17, 100, 1 << 20]:
        plan = plan_corpus([source], chunk_size, options)
        log = SkipLog()
        docs = [d for c in plan.chunks for p in c.pieces for d in read_piece(p, options, log)]
        assert [d.name for d in docs] == expected, chunk_size
        for d in docs:  # each record is its line, without the line break, and reads back
            number = int(d.name.rsplit(":", 1)[1])
            line = data.split(b"\n")[number - 1].removesuffix(b"\r")
            assert read_source(source, d.offset, d.length) == line
            assert d.text == line.decode()


def test_stdin_lines_split_over_workers_build_the_file_one_process_builds(tmp_path):
    data = _lines_text(seed=9, count=300)
    whole = tmp_path / "whole.idx"
    build_index([Path("-")], whole, BuildOptions(processes=1, analyzer=NO_STEM), stdin=io.BytesIO(data))
    split = tmp_path / "split.idx"
    options = BuildOptions(processes=2, chunk_size=300, analyzer=NO_STEM)
    build_index([Path("-")], split, options, stdin=io.BytesIO(gzip.compress(data)))  # gzip is undone
    assert split.read_bytes() == whole.read_bytes()
    with IndexReader(whole) as reader:
        assert reader.doc_names() == _expected_lines(data, "stdin")
        assert reader.meta.read.format == "auto" and reader.meta.corpus.paths == ()  # files added later: auto
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split.idx", "whole.idx"]  # no copy of stdin left


def test_stdin_jsonl_indexes_like_the_same_file(tmp_path, runner):
    docs = _docs(seed=12)
    source = _write(tmp_path / "c.jsonl", _jsonl(docs))
    from_file = _contents(_build([source], tmp_path / "file.idx"))
    out = tmp_path / "stdin.idx"
    result = runner.invoke(cli, ["build", "-", "-o", str(out), "-q", "--stem", "none"], input=_jsonl(docs))
    assert result.exit_code == 0, result.output
    assert _contents(out) == from_file
    result = runner.invoke(cli, ["search", str(out), next(iter(docs.values())).split()[0], "--snippets"])
    assert result.exit_code == 0 and "read from standard input" in result.output


def test_stdin_mistakes_are_one_line_errors(tmp_path, runner):
    out = tmp_path / "x.idx"
    cases = [
        (["build", "-", "-o", str(out)], b"", 1, "standard input is empty"),
        (["build", "-"], b"a b\n", 2, "-o/--output"),
        (["build", "-", str(tmp_path), "-o", str(out)], b"a b\n", 1, "cannot be combined"),
        (["build", "-", "-o", str(out)], gzip.compress(b"a b\n" * 50)[:-9], 1, "gzip data ends early"),
    ]
    bad = runner.invoke(cli, ["build", "-", "-o", str(out), "-q"], input=b'{"id": "a", "text": "x"}\nnot json\n')
    assert bad.exit_code == 0 and "(first: stdin:2)" in bad.stderr  # not the temporary copy's name
    out.unlink()
    for args, data, code, message in cases:
        result = runner.invoke(cli, args, input=data)
        assert result.exit_code == code, (args, result.output)
        assert message in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_index_of_stdin_takes_added_files_but_refuses_a_corpus_update(tmp_path, runner):
    out = tmp_path / "x.idx"
    assert runner.invoke(cli, ["build", "-", "-o", str(out), "-q"], input=b"red river\nblue sea\n").exit_code == 0
    result = runner.invoke(cli, ["update", str(out)])
    assert result.exit_code == 1 and "built from standard input" in result.output
    more = write_corpus(tmp_path / "more", {"a.txt": "green river"})
    result = runner.invoke(cli, ["add", str(out), str(more)])
    assert result.exit_code == 0, result.output
    with IndexReader(out) as reader:
        assert sorted(reader.doc_name(d) for d in reader.live_docs()) == ["a.txt", "stdin:1", "stdin:2"]
    assert runner.invoke(cli, ["update", str(out)]).exit_code == 0  # the added folder is a corpus now


@pytest.mark.parametrize("gz", [False, True])
def test_a_text_file_over_the_stream_size_is_read_in_blocks_and_indexes_the_same(tmp_path, monkeypatch, gz):
    rng = random.Random(5)
    words = ["River", "café", "ΟΔΟΣ", "中文", "e\u0301te\u0301", "naïve", "x" * 70]
    text = "".join(rng.choice(words) + rng.choice([" ", ", ", ".\n"]) for _ in range(3000))
    data = text.encode("utf-8")
    corpus = tmp_path / "c"
    _write(corpus / ("big.txt.gz" if gz else "big.txt"), data)
    _write(corpus / "small.txt", b"a small file, read whole")
    whole = _build([corpus], tmp_path / "whole.idx")
    opened = []
    original = readers._text_blocks
    monkeypatch.setattr(readers, "_text_blocks", lambda f, enc: (opened.append(1), original(f, enc))[1])
    monkeypatch.setattr(readers, "STREAM_BYTES", 1000)
    monkeypatch.setattr(readers, "READ_BLOCK", 7)  # multi-byte characters cut by every other block
    streamed = _build([corpus], tmp_path / "streamed.idx")
    assert opened == [1]
    assert streamed.read_bytes() == whole.read_bytes()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"words " * 1000 + b"\0" + b"more words", "binary"),
        (b" \n\t" * 1000 + " \u3000".encode(), "empty"),
        (b"words " * 1000 + b"caf\xe9" + b" more" * 10, "undecodable"),
    ],
)
def test_a_streamed_text_file_is_checked_whole_before_it_is_indexed(tmp_path, monkeypatch, content, reason):
    monkeypatch.setattr(readers, "STREAM_BYTES", 100)
    monkeypatch.setattr(readers, "READ_BLOCK", 64)
    corpus = tmp_path / "c"
    _write(corpus / "big.txt", content)
    _write(corpus / "ok.txt", b"fine")
    stats = build_index([corpus], tmp_path / "x.idx", BuildOptions(processes=1))
    assert stats.skipped_by_reason == {reason: 1}
    assert stats.documents == (2 if reason == "undecodable" else 1)


def test_a_json_file_is_jsonl_or_one_document_by_its_content(tmp_path):
    docs = _docs(seed=14, count=5)
    pretty = json.dumps({"title": "a pretty printed file", "items": [1, 2, 3]}, indent=2).encode()
    corpus = tmp_path / "c"
    _write(corpus / "records.json", _jsonl(docs))
    _write(corpus / "records2.json.gz", _jsonl(docs))
    _write(corpus / "pretty.json", pretty)
    _write(corpus / "array.json", b'[\n  {"id": "x", "text": "y"}\n]\n')
    index = _build([corpus], tmp_path / "x.idx")
    with IndexReader(index) as reader:
        names = reader.doc_names()
        assert reader.meta.skipped == {"duplicate_id": len(docs)}  # the same records in two files
    assert sorted(names) == sorted([*docs, *docs, "pretty.json", "array.json"])
