"""Option groups that commands share, each turned into the library record it stands for.

A group is a decorator adding its options to a command, and a function taking those options out
of the command's keyword arguments as one record: `analyzer_options` -> AnalyzerConfig,
`read_options` -> ReadOptions, `run_options` -> the process and memory settings of a build.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path

import click

from indexer.analysis import MAX_TERM_CHARS_DEFAULT, AnalyzerConfig, check_stemmer, resolve_stopwords
from indexer.cli.common import SIZE
from indexer.corpus.readers import FORMATS, ID_FIELDS, TEXT_FIELDS, ReadOptions
from indexer.errors import IndexerError
from indexer.indexing.pipeline import DEFAULT_CHUNK_SIZE, DEFAULT_MEMORY


def _group(*decorators: Callable) -> Callable:
    def apply(command):
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


def _stem_option(ctx, param, value: str) -> str:
    try:
        check_stemmer(value)
    except IndexerError as err:
        raise click.BadParameter(str(err)) from None
    return value


def _encoding_option(ctx, param, value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise click.BadParameter(
            f"unknown encoding {value!r}; give a codec name such as utf-8, latin-1 or cp1252"
        ) from None
    return value


def _stopwords_option(ctx, param, value: str) -> tuple[str, ...]:
    try:
        return resolve_stopwords(value)
    except IndexerError as err:
        raise click.BadParameter(str(err)) from None


analyzer_options = _group(
    click.option(
        "--stem",
        default="english",
        show_default=True,
        callback=_stem_option,
        help="Stemmer: none or a Snowball language.",
    ),
    click.option(
        "--stopwords",
        default="none",
        show_default=True,
        callback=_stopwords_option,
        help="none, english, or a file of words.",
    ),
    click.option(
        "--max-term-length",
        type=click.IntRange(min=1),
        default=MAX_TERM_CHARS_DEFAULT,
        show_default=True,
        help="Words longer than this many characters are not indexed.",
    ),
)


def analyzer_from(params: dict) -> AnalyzerConfig:
    return AnalyzerConfig(
        stem=params.pop("stem"), stopwords=params.pop("stopwords"), max_term_chars=params.pop("max_term_length")
    )


read_options = _group(
    click.option(
        "--format",
        "input_format",
        type=click.Choice(FORMATS),
        default="auto",
        show_default=True,
        help="Input format. auto: .jsonl/.ndjson/.json are JSONL, .trec/.sgml and files starting with <DOC> "
        "are TREC, the rest text (a file is a document); lines: every line is a document, named "
        "<file>:<line>; .gz is decompressed in every format.",
    ),
    click.option(
        "--id-field",
        "id_fields",
        multiple=True,
        metavar="NAME",
        help=f"JSONL field holding the document id; repeatable, first present wins [default: {', '.join(ID_FIELDS)}].",
    ),
    click.option(
        "--text-field",
        "text_fields",
        multiple=True,
        metavar="NAME",
        help=f"JSONL field to index; repeatable, joined in order [default: {', '.join(TEXT_FIELDS)}].",
    ),
    click.option(
        "--encoding",
        default="utf-8",
        show_default=True,
        callback=_encoding_option,
        help="Encoding of the input; bytes that do not decode are replaced and counted.",
    ),
    click.option(
        "--include",
        multiple=True,
        metavar="GLOB",
        help="Index only files whose path (relative to CORPUS) or name matches; repeatable. * also matches /.",
    ),
    click.option(
        "--exclude",
        multiple=True,
        metavar="GLOB",
        help="Skip files and folders whose relative path or name matches; repeatable.",
    ),
    click.option("--strict", is_flag=True, help="Fail (exit 1, no index written) on any skipped or repaired input."),
)


def read_options_from(params: dict) -> ReadOptions:
    return ReadOptions(
        format=params.pop("input_format"),
        id_fields=params.pop("id_fields") or ID_FIELDS,
        text_fields=params.pop("text_fields") or TEXT_FIELDS,
        encoding=params.pop("encoding"),
        include=params.pop("include"),
        exclude=params.pop("exclude"),
        strict=params.pop("strict"),
    )


run_options = _group(
    click.option("-p", "--processes", type=click.IntRange(min=1), help="Worker processes [default: one per CPU]."),
    click.option("--sequential", is_flag=True, help="Run everything in this process (same as -p 1)."),
    click.option(
        "--scheduler",
        metavar="ADDRESS",
        help="Run the tasks on a Dask cluster: tcp://host:8786, or local:N for N local workers (needs indexer[dask]).",
    ),
    click.option(
        "--chunk-size", type=SIZE, default=DEFAULT_CHUNK_SIZE, help="Bytes of input per task, e.g. 4MB.  [default: 4MB]"
    ),
    click.option(
        "--memory",
        type=SIZE,
        default=DEFAULT_MEMORY,
        help="Memory budget of the whole build, e.g. 1GB.  [default: 1GB]",
    ),
    click.option(
        "--tmp-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Folder for temporary runs [default: beside the output].",
    ),
)


def run_from(params: dict) -> dict:
    """processes, chunk_size, memory and tmp_dir for BuildOptions, and the scheduler address; the
    contradictions between -p, --sequential and --scheduler are usage errors."""
    processes, sequential, scheduler = params.pop("processes"), params.pop("sequential"), params.pop("scheduler")
    if sequential and processes not in (None, 1):
        raise click.UsageError("--sequential and -p N > 1 contradict each other; give one of them")
    if scheduler and (sequential or processes):
        raise click.UsageError("--scheduler runs on the cluster's workers; leave out -p and --sequential")
    tmp_dir = params.pop("tmp_dir")
    return {
        "processes": 1 if sequential else processes,
        "chunk_size": params.pop("chunk_size"),
        "memory": params.pop("memory"),
        "tmp_dir": tmp_dir.absolute() if scheduler and tmp_dir else tmp_dir,
        "scheduler": scheduler,
    }


output_options = _group(
    click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout."),
    click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line."),
    click.option(
        "--progress/--no-progress",
        default=None,
        help="Force the progress bar on or off [default: on when stderr is a terminal].",
    ),
)
