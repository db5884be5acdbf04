"""funcpipe_rag: RAG ingestion over lazy Result streams that always clean up.

The public API lives in :mod:`funcpipe_rag.api.core`. Importing this package must stay
cheap: it imports neither Typer nor Rich.
"""

__version__ = "0.1.0"
