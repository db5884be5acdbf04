"""The funcpipe command line: one module per command, Rich only in ``render``."""
