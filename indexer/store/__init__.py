"""Storing an index: the codec, the file with its sections, meta records, temporary files and the writer lock."""
