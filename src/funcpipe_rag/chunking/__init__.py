"""Chunking: pure functions that cut text into overlapping, offset-carrying spans."""
