"""Corpus readers, audio I/O, folds and batching."""
