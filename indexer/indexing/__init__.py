"""Indexing: plan chunks, invert them on an executor, merge term ranges, write the file."""
