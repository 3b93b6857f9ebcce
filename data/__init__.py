"""Benchmarks, local files, the built-in demo task, and deterministic splits."""
