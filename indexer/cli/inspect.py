"""`indexer postings`, `stats` and `verify`: what an index holds, and whether it is intact."""

from __future__ import annotations

import json

import click

from indexer.cli.common import index_argument, out, reported_errors
from indexer.cli.render import escape_line
from indexer.retrieval.searcher import Searcher, open_index
from indexer.store.describe import index_stats


@click.command(short_help="Show the posting list of one term.")
@index_argument
@click.argument("term")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def postings(index, term, as_json):
    """Show the posting list of TERM (analyzed like a query word) in INDEX.

    Example: indexer postings notes.idx running
    """
    with reported_errors(), open_index(index) as reader:
        searcher = Searcher(reader)
        terms = searcher.analyzer.terms(term)
        if len(terms) != 1:
            what = (
                "is not indexed (a stopword or too long?)" if not terms else f"analyzes to {len(terms)} terms {terms}"
            )
            raise click.UsageError(f"{term!r} {what}; give one word")
        found = reader.postings(terms[0])
        rows = []
        if found is not None:
            offsets, positions = found.positions() if reader.has_positions else (None, None)
            for i, (doc, tf) in enumerate(zip(found.docs.tolist(), found.tfs.tolist())):
                row = {"doc": reader.doc_name(doc), "tf": tf}
                if offsets is not None:
                    row["positions"] = positions[offsets[i] : offsets[i + 1]].tolist()
                rows.append(row)
    if as_json:
        out(json.dumps({"term": terms[0], "df": len(rows), "postings": rows}))
        return
    for row in rows:
        out("\t".join([escape_line(row["doc"]), str(row["tf"]), " ".join(map(str, row.get("positions", [])))]).rstrip())
    click.echo(f"term {terms[0]!r}: df {len(rows):,}", err=True)


@click.command(short_help="Show what an index holds: counts, sizes, analyzer settings.")
@index_argument
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def stats(index, as_json):
    """Show what INDEX holds: documents, terms, sizes, analyzer settings.

    Example: indexer stats notes.idx --json
    """
    with reported_errors():
        info = index_stats(index)
    if as_json:
        out(json.dumps(info))
        return
    width = max(map(len, info))
    for key, value in info.items():
        if isinstance(value, float):
            value = f"{value:,.3f}"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        elif isinstance(value, dict | list):
            value = json.dumps(value)
        out(f"{key.replace('_', ' '):<{width}}  {value}")


@click.command(short_help="Check every checksum of an index.")
@index_argument
def verify(index):
    """Check every checksum of INDEX (every page of every segment); exit 1 naming the damaged sections.

    Example: indexer verify notes.idx
    """
    with reported_errors(), open_index(index) as reader:
        damaged = reader.verify()
        segments = len(reader.segments)
        size = sum(len(s.buf) for s in reader.segments)
    if damaged:
        raise click.ClickException(f"{index}: damaged sections: {', '.join(damaged)}; rebuild it with 'indexer build'")
    out(f"{index}: OK ({segments} segment{'s' if segments != 1 else ''}, {size:,} bytes checked)")
