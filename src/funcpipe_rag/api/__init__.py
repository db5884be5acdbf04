"""The public API of funcpipe_rag; see :mod:`funcpipe_rag.api.core`."""
