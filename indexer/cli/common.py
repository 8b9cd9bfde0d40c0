"""What every command shares: the error contract, stdout, and the option types.

Results go to stdout (plain or one JSON document); progress, warnings and errors go to stderr.
Exit codes: 0 success (a search with no hits included), 1 a failed operation, 2 a usage error or a
malformed query, 128 + N a build stopped by signal N.
"""

from __future__ import annotations

import math
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from indexer.errors import ArgumentError, IndexerError, QueryError
from indexer.retrieval.scoring import DEFAULT_B, DEFAULT_K1

EXIT_USAGE = 2


@contextmanager
def reported_errors():
    """Turn the library's errors into one-line messages with the documented exit codes."""
    try:
        yield
    except QueryError as err:
        raise _QueryFailed(str(err)) from None
    except ArgumentError as err:
        raise click.UsageError(str(err)) from None
    except IndexerError as err:
        raise click.ClickException(str(err)) from None
    except BrokenPipeError:
        raise ReaderGone() from None
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        raise click.ClickException(f"{where}{err.strerror or err}") from None


class ReaderGone(Exception):
    """Whoever read standard output went away (`| head`): the command ends quietly, exit 141 as
    SIGPIPE ends `cat` (not an OSError, so that nothing on the way mistakes it for a failure)."""


class StdoutFailed(click.ClickException):
    """Results could not be written to standard output (closed, or on a full disk)."""

    def __init__(self, err: OSError | None, after: str = ""):
        self.error = err
        why = "it is closed" if err is None else (err.strerror or str(err))
        super().__init__(f"cannot write to standard output ({why}){after}")


def out(text: str = "", nl: bool = True, color: bool | None = None) -> None:
    """Print results on stdout; a closed or full stdout is one clear error, not a traceback.
    A reader that went away (`| head`) raises ReaderGone."""
    if sys.stdout is None:  # started with stdout closed (`>&-`)
        raise StdoutFailed(None)
    try:
        click.echo(text, nl=nl, color=color)  # color None: ANSI styles kept on a terminal only
    except BrokenPipeError:
        raise ReaderGone() from None
    except OSError as err:
        raise StdoutFailed(err) from None


def flush_stdout(after: str = "") -> None:
    if sys.stdout is None:
        return
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise ReaderGone() from None
    except OSError as err:
        raise StdoutFailed(err, after) from None


class _QueryFailed(click.ClickException):
    """A malformed query: one line, exit 2 like other usage errors."""

    exit_code = EXIT_USAGE

    def format_message(self) -> str:
        return f"bad query: {self.message}"


def parse_size(text: str) -> int:
    """`4MB`, `512KB`, `1.5GB`, `1000` -> bytes (powers of 1024). Raises ValueError."""
    s = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = 1
    for unit, factor in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40)):
        if s.endswith(unit):
            s, scale = s[:-1], factor
            break
    value = float(s)
    if value <= 0 or not math.isfinite(value):
        raise ValueError(text)
    return max(1, int(value * scale))


class SizeType(click.ParamType):
    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ValueError:
            self.fail(f"{value!r} is not a size like 4MB, 512KB or 1GB", param, ctx)


SIZE = SizeType()


class Bm25Param(click.ParamType):
    """A finite float in [low, high]: NaN and infinity are refused, not silently accepted."""

    name = "float"

    def __init__(self, low: float, high: float = math.inf):
        self.low, self.high = low, high

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number) or not self.low <= number <= self.high:
            where = f"from {self.low:g} to {self.high:g}" if math.isfinite(self.high) else f"{self.low:g} or more"
            self.fail(f"{value!r} is not a finite number {where}", param, ctx)
        return number


# shared by the commands that read an index
EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
index_argument = click.argument("index", type=EXISTING_FILE)


def bm25_options(command):
    """--k1 and --b, for the commands that rank."""
    command = click.option(
        "--b", "b", type=Bm25Param(0, 1), default=DEFAULT_B, show_default=True, help="BM25 length normalization."
    )(command)
    return click.option(
        "--k1",
        type=Bm25Param(0),
        default=DEFAULT_K1,
        show_default=True,
        help="BM25 term-frequency saturation.",
    )(command)


class Interrupted(click.ClickException):
    """A command stopped by a signal: one line, exit status 128 + the signal's number."""

    def __init__(self, signum: int, note: str | None = None):
        name = signal.Signals(signum).name
        super().__init__(f"{name} received" + (f"; {note}" if note else ""))
        self.exit_code = 128 + signum

    def show(self, file=None) -> None:
        click.echo(f"Aborted: {self.message}", err=True)


class StopSignal(BaseException):
    """Raised in the main thread by a signal handler, like KeyboardInterrupt, so cleanups run."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, `timeout` and `kill`, a closed terminal


@contextmanager
def stopped_by_signals(note: str | None = None):
    """Make Ctrl-C, SIGTERM and SIGHUP stop the block like an exception (its cleanups run), then
    exit with 128 + the signal's number, `note` saying what was left. A second signal during the
    cleanup is ignored, so the cleanup finishes."""

    def stop(signum, frame):
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise StopSignal(signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield
    except StopSignal as caught:
        raise Interrupted(caught.signum, note) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
