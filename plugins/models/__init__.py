"""cvit-bench plugins/models."""
