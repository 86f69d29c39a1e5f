"""cvit-bench plugins/benchmarks."""
