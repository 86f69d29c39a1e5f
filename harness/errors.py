"""Errors a user can act on.

The CLI prints a :class:`CvitError` as one message and exits with its ``exit_code``; any other
exception is a bug in cvit-bench or a plugin and keeps its traceback.
"""

from __future__ import annotations


class CvitError(Exception):
    """A problem with the user's input or environment, explained in the message."""

    exit_code = 1


class UsageError(CvitError):
    """Bad command-line usage or configuration (unknown name, malformed value): exit status 2."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A method, benchmark or model name that no installed plugin registered."""


class PluginLoadError(CvitError):
    """A plugin failed to import or to register, and one of its entries was asked for."""


class DataError(CvitError):
    """A missing or malformed data file (annotation, image, reference file)."""


class ResultFileError(CvitError):
    """A result file that is corrupt, truncated, or not a cvit-bench result file."""


class RunDirError(CvitError):
    """A run directory that cannot be used (it holds a different run's config, say)."""
