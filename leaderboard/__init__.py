"""cvit-bench leaderboard."""
