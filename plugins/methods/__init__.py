"""cvit-bench plugins/methods."""
