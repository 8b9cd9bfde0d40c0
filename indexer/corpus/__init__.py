"""The corpus: which files to index (discover) and how their bytes become documents (readers)."""
