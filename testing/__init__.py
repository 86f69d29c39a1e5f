"""cvit-bench testing."""
