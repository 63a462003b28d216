"""Metadata and media stores behind small interfaces, chosen by configuration."""
