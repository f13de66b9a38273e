"""Deterministic fuzzing of what reads server and capture bytes (see README.md)."""
