"""Benchmark scripts that measure keras-nexus against its claims."""
