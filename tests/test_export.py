"""Export: CIFF read back with an independent reader (the protobuf package, its message classes
made at runtime from the CIFF definitions) and JSONL, both compared with `indexer postings`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import random_docs, write_corpus
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from indexer import export as export_module
from indexer.analysis import AnalyzerConfig
from indexer.cli import cli
from indexer.export import export_index
from indexer.indexing.pipeline import BuildOptions, build_index
from indexer.indexing.update import UpdateOptions, delete_documents, update_index
from indexer.store.index import IndexReader

# ---------------------------------------------------------------------------------------------
# An independent CIFF reader: the messages of osirrc/ciff's CommonIndexFileFormat.proto, declared
# here field by field, parsed by protobuf itself.

_F = descriptor_pb2.FieldDescriptorProto
_CIFF_MESSAGES = {
    "Header": [
        (1, "version", _F.TYPE_INT32),
        (2, "num_postings_lists", _F.TYPE_INT32),
        (3, "num_docs", _F.TYPE_INT32),
        (4, "total_postings_lists", _F.TYPE_INT32),
        (5, "total_docs", _F.TYPE_INT32),
        (6, "total_terms_in_collection", _F.TYPE_INT64),
        (7, "average_doclength", _F.TYPE_DOUBLE),
        (8, "description", _F.TYPE_STRING),
    ],
    "Posting": [(1, "docid", _F.TYPE_INT32), (2, "tf", _F.TYPE_INT32)],
    "PostingsList": [
        (1, "term", _F.TYPE_STRING),
        (2, "df", _F.TYPE_INT64),
        (3, "cf", _F.TYPE_INT64),
        (4, "postings", _F.TYPE_MESSAGE),
    ],
    "DocRecord": [
        (1, "docid", _F.TYPE_INT32),
        (2, "collection_docid", _F.TYPE_STRING),
        (3, "doclength", _F.TYPE_INT32),
    ],
}


def _ciff_classes() -> dict:
    proto = descriptor_pb2.FileDescriptorProto(name="ciff_test.proto", package="ciff_test", syntax="proto3")
    for name, fields in _CIFF_MESSAGES.items():
        message = proto.message_type.add(name=name)
        for number, field_name, kind in fields:
            field = message.field.add(name=field_name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
            if kind == _F.TYPE_MESSAGE:
                field.label = _F.LABEL_REPEATED
                field.type_name = ".ciff_test.Posting"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"ciff_test.{name}"))
        for name in _CIFF_MESSAGES
    }


CIFF = _ciff_classes()


def _delimited(data: bytes):
    """The messages of a stream of varint-length-prefixed messages (protobuf's writeDelimitedTo)."""
    at = 0
    while at < len(data):
        size = shift = 0
        while True:
            byte = data[at]
            at += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        assert at + size <= len(data), "a message runs past the end"
        yield data[at : at + size]
        at += size


def read_ciff(data: bytes):
    """(header, [(term, df, cf, [(doc, tf)])], [(docid, name, length)]), checking on the way that
    every message is exactly what protobuf itself writes for it (fields in order, defaults left out)."""
    messages = _delimited(data)

    def parse(kind: str, raw: bytes):
        message = CIFF[kind]()
        message.ParseFromString(raw)
        assert message.SerializeToString() == raw, f"{kind} is not protobuf's own encoding"
        return message

    header = parse("Header", next(messages))
    lists = []
    for _ in range(header.num_postings_lists):
        plist = parse("PostingsList", next(messages))
        docs = np.cumsum([p.docid for p in plist.postings]).tolist()  # undo the d-gaps
        lists.append((plist.term, plist.df, plist.cf, list(zip(docs, [p.tf for p in plist.postings]))))
    records = [parse("DocRecord", next(messages)) for _ in range(header.num_docs)]
    assert next(messages, None) is None, "bytes after the last doc record"
    return header, lists, [(r.docid, r.collection_docid, r.doclength) for r in records]


# ---------------------------------------------------------------------------------------------
# Indexes


@pytest.fixture
def updated_index(tmp_path) -> Path:
    """Two segments with deletions in both: a build, then files added and documents deleted.
    `every` is in every document (several blocks), non-ASCII words come from the random text,
    `repeat` has a tf over 127 (a two-byte varint), and `ghost` is only in deleted documents."""
    docs = random_docs(seed=3, count=220)
    docs = {name: f"every {text}" for name, text in docs.items()}
    docs["long.txt"] = "every " + "repeat " * 300
    docs["ghost.txt"] = "every ghost café"
    corpus = write_corpus(tmp_path / "corpus", docs)
    index = tmp_path / "multi.idx"
    build_index([corpus], index, BuildOptions(processes=1, analyzer=AnalyzerConfig(stem="none")))
    write_corpus(corpus, {f"new/extra{i:02d}.txt": f"every naïve Über extra{i % 3} run" for i in range(40)})
    update_index(index, UpdateOptions(processes=1, merge=False))
    with IndexReader(index) as reader:
        names = reader.doc_names()
    delete_documents(index, ["ghost.txt", names[0], names[5], "new/extra03.txt"], UpdateOptions(merge=False))
    with IndexReader(index) as reader:
        assert len(reader.segments) == 2
        assert all(len(gone.docs) for gone in reader.deletions)
    return index


def _cli_postings(runner, index: Path, term: str) -> dict:
    result = runner.invoke(cli, ["postings", str(index), term, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ---------------------------------------------------------------------------------------------
# CIFF


def test_ciff_of_a_multi_segment_index_with_deletions_agrees_with_indexer_postings(runner, tmp_path, updated_index):
    out = tmp_path / "multi.ciff"
    result = runner.invoke(cli, ["export", str(updated_index), "--format", "ciff", "-o", str(out)])
    assert result.exit_code == 0, result.output
    header, lists, records = read_ciff(out.read_bytes())

    with IndexReader(updated_index) as reader:
        names = reader.doc_names()
        live = reader.live_docs()
        lengths = reader.doc_lengths[live].astype(int).tolist()
        terms = [t for t in reader.terms() if reader.postings(t) is not None]
    # doc records: dense ids over the live documents, in index order
    assert records == [(i, name, length) for i, (name, length) in enumerate(zip(names, lengths))]
    assert "ghost.txt" not in names
    # the header
    assert header.version == 1
    assert header.num_postings_lists == header.total_postings_lists == len(lists) == len(terms)
    assert header.num_docs == header.total_docs == len(names)
    assert header.total_terms_in_collection == sum(lengths) == sum(tf for *_, p in lists for _, tf in p)
    assert header.average_doclength == sum(lengths) / len(names)
    assert header.description.startswith("indexer ")
    # every posting list, in byte order, against `indexer postings --json`
    assert [term for term, *_ in lists] == terms == sorted(terms, key=lambda t: t.encode("utf-8"))
    assert {"café", "naïve", "über"} <= set(terms) and "ghost" not in terms
    for term, df, cf, postings in lists:
        expected = _cli_postings(runner, updated_index, term)
        assert expected["term"] == term
        assert [(names[doc], tf) for doc, tf in postings] == [(p["doc"], p["tf"]) for p in expected["postings"]]
        assert df == expected["df"] == len(postings)
        assert cf == sum(tf for _, tf in postings)
    every = next(p for term, _, _, p in lists if term == "every")
    assert len(every) == len(names) > 2 * 128 and every[0][0] == 0  # several blocks; doc 0's gap is 0
    assert max(tf for term, _, _, p in lists if term == "repeat" for _, tf in p) == 300


def test_batches_do_not_change_the_bytes_and_every_list_matches_the_reader(tmp_path, updated_index, monkeypatch):
    whole = tmp_path / "whole.ciff"
    export_index(updated_index, whole, "ciff")
    monkeypatch.setattr(export_module, "BATCH_POSTINGS", 50)  # many batches; `every` alone in one
    monkeypatch.setattr(export_module, "DOC_BATCH", 7)
    small = tmp_path / "small.ciff"
    stats = export_index(updated_index, small, "ciff")
    assert small.read_bytes() == whole.read_bytes()
    _, lists, _ = read_ciff(small.read_bytes())
    assert stats.terms == len(lists) and stats.bytes == small.stat().st_size
    with IndexReader(updated_index) as reader:
        dense = {int(doc): i for i, doc in enumerate(reader.live_docs())}
        assert stats.documents == len(dense) and stats.postings == sum(len(p) for *_, p in lists)
        for term, _, _, postings in lists:
            found = reader.postings(term)
            assert postings == [(dense[d], tf) for d, tf in zip(found.docs.tolist(), found.tfs.tolist())]


def test_posting_varints_of_every_length_are_read_back_by_protobuf():
    values = np.array([0, 1, 127, 128, 16383, 16384, (1 << 21) - 1, 1 << 21, (1 << 28) - 1, 1 << 28, (1 << 31) - 1])
    gaps, tfs = values, values[::-1] + 1
    tfs[0] = (1 << 31) - 1
    records, widths = export_module._posting_records(gaps, tfs)
    assert len(records) == widths.sum()
    plist = CIFF["PostingsList"]()
    plist.ParseFromString(b"\n\x01x" + records.tobytes())
    assert [p.docid for p in plist.postings] == gaps.tolist()
    assert [p.tf for p in plist.postings] == tfs.tolist()


def test_ciff_on_stdout_is_the_same_bytes_and_a_terminal_is_refused(runner, tmp_path, small_index, monkeypatch):
    out = tmp_path / "x.ciff"
    written = runner.invoke(cli, ["export", str(small_index), "--format", "ciff", "-o", str(out), "--description", "d"])
    assert written.exit_code == 0 and written.stdout == "" and "Exported" in written.stderr
    piped = runner.invoke(cli, ["export", str(small_index), "--format", "ciff", "-q", "--description", "d"])
    assert piped.exit_code == 0 and piped.stderr == ""
    assert piped.stdout_bytes == out.read_bytes()
    assert read_ciff(piped.stdout_bytes)[0].description == "d"

    monkeypatch.setattr("indexer.cli.export.stdout_is_terminal", lambda: True)
    refused = runner.invoke(cli, ["export", str(small_index), "--format", "ciff"])
    assert refused.exit_code == 1 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "terminal" in refused.stderr


def test_bad_requests_are_one_line_errors_and_leave_files_alone(runner, tmp_path, small_index):
    before = small_index.read_bytes()
    onto_itself = runner.invoke(cli, ["export", str(small_index), "--format", "ciff", "-o", str(small_index)])
    assert onto_itself.exit_code == 1 and onto_itself.stderr.startswith("Error: ") and "index" in onto_itself.stderr
    assert small_index.read_bytes() == before
    no_folder = runner.invoke(cli, ["export", str(small_index), "--format", "ciff", "-o", str(tmp_path / "no" / "x")])
    assert no_folder.exit_code == 1 and no_folder.stderr.count("\n") == 1
    conflict = runner.invoke(cli, ["export", str(small_index), "--format", "jsonl", "--description", "d"])
    assert conflict.exit_code == 2
    not_index = tmp_path / "junk.idx"
    not_index.write_bytes(b"not an index at all, but long enough to be read as one" * 2)
    refused = runner.invoke(cli, ["export", str(not_index), "--format", "jsonl"])
    assert refused.exit_code == 1 and refused.stdout == "" and refused.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".indexer-")) == []


# ---------------------------------------------------------------------------------------------
# JSONL


def test_jsonl_agrees_with_indexer_postings_json(runner, updated_index):
    result = runner.invoke(cli, ["export", str(updated_index), "--format", "jsonl"], catch_exceptions=False)
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    with IndexReader(updated_index) as reader:
        assert [line["term"] for line in lines] == [t for t in reader.terms() if reader.postings(t) is not None]
    for text, line in zip(result.stdout.splitlines(), lines):
        assert text == json.dumps(line, ensure_ascii=False)  # the bytes json.dumps gives, keys in this order
        assert list(line) == ["term", "df", "cf", "postings"]
        expected = _cli_postings(runner, updated_index, line["term"])
        assert line["postings"] == [[p["doc"], p["tf"], p["positions"]] for p in expected["postings"]]
        assert line["df"] == expected["df"] and line["cf"] == sum(p["tf"] for p in expected["postings"])


def test_jsonl_without_positions_has_doc_and_tf_pairs(tmp_path, small_corpus):
    index = tmp_path / "nopos.idx"
    build_index([small_corpus], index, BuildOptions(processes=1, positions=False))
    out = tmp_path / "nopos.jsonl"
    export_index(index, out, "jsonl")
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    with IndexReader(index) as reader:
        first = reader.postings(lines[0]["term"])
        assert lines[0]["postings"][0] == [reader.doc_name(int(first.docs[0])), int(first.tfs[0])]
        assert len(lines) == reader.term_count
