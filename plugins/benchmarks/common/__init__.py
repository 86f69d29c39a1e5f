"""Shared pieces of the benchmark plugins: LLaVA/COIN file readers, a benchmark base class,
the published scorers and the data checker."""
