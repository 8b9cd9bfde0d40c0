"""Rendering search results: plain lines, one JSON document or TREC run lines on stdout."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from dataclasses import dataclass

import click

from indexer.cli.common import out

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


@dataclass(frozen=True)
class Rendered:
    """Some queries' results as output: `text` for stdout (for --format json, the queries' objects
    joined by ", ", to go inside the batch document), warnings for stderr, and the sources no
    snippet could be read from."""

    text: str
    warnings: list[str]
    missing: list[str]
    queries: int


@dataclass(frozen=True)
class Renderer:
    """Renders (query id, SearchResult) pairs; plain data, so that batch search workers render
    their own queries and the parent only writes the text out in order."""

    form: str = "text"
    run_name: str | None = None
    batch: bool = False
    color: bool = False
    ids_only: bool = False

    def __call__(self, results) -> Rendered:
        lines: list[str] = []
        warnings: list[str] = []
        missing: list[str] = []
        count = 0
        for qid, result in results:
            count += 1
            for note in result.notes:
                warnings.append(f"Warning: {f'query {qid}: ' if self.batch else ''}{note}")
            missing += [h.snippet.missing_source for h in result.hits if h.snippet and h.snippet.missing_source]
            if self.ids_only:
                lines += [escape_line(hit.doc) + "\n" for hit in result.hits]
            elif self.form == "trec":
                from indexer.evaluate import escape_trec_id, write_trec_run  # TREC runs only

                trec = io.StringIO()
                first = result.hits[0].rank if result.hits else 1
                hits = [(escape_trec_id(h.doc), h.score) for h in result.hits]
                write_trec_run(trec, qid, hits, self.run_name or "indexer", first)
                lines.append(trec.getvalue())
            elif self.form in ("json", "jsonl"):
                document = json.dumps({"id": qid, **result.to_dict()} if self.batch else result.to_dict())
                lines.append(document + ("\n" if self.form == "jsonl" else ""))
            else:
                lines += [line + "\n" for line in self._text(qid, result)]
        joiner = ", " if self.form == "json" and not self.ids_only else ""
        return Rendered(joiner.join(lines), warnings, missing, count)

    def _text(self, qid: str, result) -> list[str]:
        lines = [f"query {escape_line(qid)}: {escape_line(result.query)}"] if self.batch else []
        for hit in result.hits:
            lines.append(f"{hit.rank:>3}  {hit.score:8.4f}  {escape_line(hit.doc)}")
            if hit.snippet is not None:
                text = "".join(
                    (click.style(part, bold=True, fg="yellow") if self.color else f"**{part}**") if marked else part
                    for part, marked in hit.snippet.parts
                )
                lines.append(f"     {text}")
            for part in hit.explain or ():
                lines.append(
                    f"     {part.weight:8.4f}  {escape_line(part.term)}"
                    f"{f' x{part.times}' if part.times > 1 else ''}: tf {part.tf}, df {part.df:,}, "
                    f"idf {part.idf:.4f}, doc length {part.doc_length:,} (average {part.avg_doc_length:.1f})"
                )
        return lines


def write_rendered(chunks, renderer: Renderer) -> None:
    """Write rendered chunks out as they come (a JSON batch as one document around them); their
    warnings go to stderr, and one line sums up the hits whose source could not be read."""
    missing: list[str] = []
    json_batch = renderer.form == "json" and renderer.batch and not renderer.ids_only
    if json_batch:
        out('{"queries": [', nl=False)
    first = True
    for chunk in chunks:
        for warning in chunk.warnings:
            click.echo(warning, err=True)
        missing += chunk.missing
        if json_batch and chunk.text and not first:
            out(", ", nl=False)
        if chunk.text:
            first = False
            single_json = renderer.form == "json" and not renderer.batch and not renderer.ids_only
            out(chunk.text, nl=single_json, color=renderer.color)
    if json_batch:
        out("]}")
    if missing:
        click.echo(
            f"Warning: no snippet for {len(missing)} hit{'s' if len(missing) > 1 else ''}: source files moved or "
            f"changed since the build (first: {missing[0]}); bring the index up to date with 'indexer update'",
            err=True,
        )
