"""Rendering search results: plain lines, one JSON document or TREC run lines on stdout."""

from __future__ import annotations

import io
import json
import os
import re
import sys

import click

from indexer.cli.common import out
from indexer.evaluate import escape_trec_id, write_trec_run

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def escape_line(text: str) -> str:
    """`text` safe for one line of output: control characters (a newline in a file name) as
    backslash escapes, \\n, \\t, \\r or \\xNN; everything else as it is."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(m[0], f"\\x{ord(m[0]):02x}"), text)


def _stdout_is_terminal() -> bool:
    return sys.stdout is not None and sys.stdout.isatty()


def use_color(choice: str) -> bool:
    """--color auto|always|never: auto colors a terminal unless NO_COLOR is set (no-color.org)."""
    if choice == "auto":
        return _stdout_is_terminal() and not os.environ.get("NO_COLOR")
    return choice == "always"


FORMATS = ("text", "json", "jsonl", "trec")


def render_results(
    results, form: str, run_name: str | None, batch: bool, color: bool = False, ids_only: bool = False
) -> None:
    """Print (query id, SearchResult) pairs as they come: plain text, one JSON document, one JSON
    line per query, TREC run lines, or (`ids_only`) doc ids alone, one a line. Notes (a query
    searched as plain words, no searchable words) go to stderr."""
    missing: list[str] = []
    documents = []
    for qid, result in results:
        for note in result.notes:
            click.echo(f"Warning: {f'query {qid}: ' if batch else ''}{note}", err=True)
        missing += [h.snippet.missing_source for h in result.hits if h.snippet and h.snippet.missing_source]
        if ids_only:
            for hit in result.hits:
                out(escape_line(hit.doc))
        elif form == "trec":
            lines = io.StringIO()
            first = result.hits[0].rank if result.hits else 1
            write_trec_run(lines, qid, [(escape_trec_id(h.doc), h.score) for h in result.hits], run_name, first)
            out(lines.getvalue(), nl=False)
        elif form == "json":
            documents.append({"id": qid, **result.to_dict()} if batch else result.to_dict())
        elif form == "jsonl":
            out(json.dumps({"id": qid, **result.to_dict()} if batch else result.to_dict()))
        else:
            _text(qid, result, batch, color)
    if form == "json" and not ids_only:
        out(json.dumps({"queries": documents} if batch else documents[0]))
    if missing:
        click.echo(
            f"Warning: no snippet for {len(missing)} hit{'s' if len(missing) > 1 else ''}: source files moved or "
            f"changed since the build (first: {missing[0]}); rebuild the index with 'indexer build'",
            err=True,
        )


def _text(qid: str, result, batch: bool, color: bool) -> None:
    if batch:
        out(f"query {escape_line(qid)}: {escape_line(result.query)}")
    for hit in result.hits:
        out(f"{hit.rank:>3}  {hit.score:8.4f}  {escape_line(hit.doc)}")
        if hit.snippet is not None:
            text = "".join(
                (click.style(part, bold=True, fg="yellow") if color else f"**{part}**") if marked else part
                for part, marked in hit.snippet.parts
            )
            out(f"     {text}")
        for part in hit.explain or ():
            out(
                f"     {part.weight:8.4f}  {escape_line(part.term)}"
                f"{f' x{part.times}' if part.times > 1 else ''}: tf {part.tf}, df {part.df:,}, idf {part.idf:.4f}, "
                f"doc length {part.doc_length:,} (average {part.avg_doc_length:.1f})"
            )
