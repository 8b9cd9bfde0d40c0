"""Retrieval: parse a query, match and score documents on an open index, rank, show snippets."""
