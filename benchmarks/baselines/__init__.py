"""Baseline models for the benchmarks: Tokenformer and a KerasHub Llama."""
