"""Effective policy: enumeration, catalog matching, what-if simulation."""
