"""Page shell, stylesheet and script of the leaderboard site (package data)."""
