"""`indexer serve`: the index on a local HTTP server (JSON API and a search page) until stopped."""

from __future__ import annotations

import signal

import click

from indexer.cli.common import Interrupted, StopSignal, bm25_options, index_argument, reported_errors

SERVER_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # what uvicorn itself answers by stopping


@click.command(short_help="Serve an index over HTTP: a JSON API and a search page.")
@index_argument
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every network).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on (0: any free one).",
)
@click.option(
    "--searchers",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Searches answered at once, each on its own thread and reader.",
)
@bm25_options
def serve(index, host, port, searchers, k1, b):
    """Serve INDEX on a local web server until Ctrl-C or SIGTERM: a search page at / and a JSON API
    (/search?q=..., /stats, /doc/ID). Read-only; needs the 'serve' extra.

    Example: indexer serve notes.idx --port 8080
    """
    from indexer.serving import serve as run

    with reported_errors(), _Stop() as stop:

        def ready(address: str) -> None:
            stop.serving = True
            click.echo(f"Serving {index} on {address} (Ctrl-C to stop)", err=True)

        try:
            run(index, host=host, port=port, searchers=searchers, k1=k1, b=b, on_ready=ready)
        except StopSignal as caught:
            raise Interrupted(caught.signum) from None
    click.echo(f"Stopped by {signal.Signals(stop.signal).name}." if stop.signal else "Stopped.", err=True)


class _Stop:
    """While the server runs, uvicorn catches SIGINT and SIGTERM and stops it, answering the requests
    in flight; then it raises the signal again for the handler that was there before: this one,
    which notes it, so that a stop asked for is a normal end (exit 0). A signal before the server
    has started stops the startup as it stops any command (`Aborted: SIGTERM received`, 128 + signal)."""

    def __init__(self):
        self.serving = False
        self.signal: int | None = None

    def _note(self, signum, frame) -> None:
        if not self.serving:
            raise StopSignal(signum)
        self.signal = signum

    def __enter__(self) -> _Stop:
        self._previous = {sig: signal.signal(sig, self._note) for sig in SERVER_STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
