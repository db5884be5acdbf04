"""Embedders: turn chunk texts into fixed-size float32 vectors."""
