"""The static leaderboard: ``cvit-bench leaderboard build`` and ``cvit-bench publish``.

* :mod:`.collect` reads run directories (metrics recomputed from each matrix) and says what is
  wrong with a run (incomplete, dirty tree, non-canonical protocol, scratch);
* :mod:`.board` groups runs by benchmark identity and seeds into rows;
* :mod:`.site` writes the pages and downloads, :mod:`.render` the HTML and SVG pieces,
  :mod:`.exports` the CSV and Parquet files;
* :mod:`.publish` validates a run and copies it into a results tree;
* :mod:`.synthetic` writes fake but valid run directories for measuring the build.

See ``docs/leaderboard.md``.
"""
