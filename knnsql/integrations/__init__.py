"""Adapters for the frameworks users reach vector stores through (each behind its own extra)."""
