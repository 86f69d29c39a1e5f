"""cvit-bench plugins."""
