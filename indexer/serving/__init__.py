"""Serving an index over HTTP: `indexer serve`, an optional extra (`pip install 'indexer[serve]'`).

service.py answers the JSON API with plain dicts and no web framework; app.py puts it on HTTP with
Starlette and uvicorn and adds the search page (page.html). Only `serve` is needed from outside:
it says how to install the web stack when it is missing.
"""

from __future__ import annotations

from indexer.errors import IndexerError

INSTALL = "pip install 'indexer[serve]'"


class MissingExtraError(IndexerError):
    """The optional web stack is not installed."""


def serve(index, **options) -> None:
    """Serve `index` over HTTP until SIGINT or SIGTERM (options: see indexer.serving.app.serve).
    Raises MissingExtraError, saying how to install it, when the web stack is missing."""
    try:
        from indexer.serving.app import serve as run
    except ImportError as err:
        missing = (err.name or "").split(".")[0]
        if not missing or missing == "indexer":
            raise
        raise MissingExtraError(
            f"'indexer serve' needs the optional web stack ({missing} is missing): {INSTALL}"
        ) from None
    run(index, **options)
