"""Benchmarks of the TAMS API service, run against a real server process (see bench/README.md)."""
