"""The error a user can fix.

:class:`UserError` is a bad flag, a bad file, a folder that is not a run.
Scripts print it as one ``error: ...`` line with no traceback, its control
characters escaped (:func:`toolkit.cli.script`). Its subclasses say where
it came from: :class:`DataError` (a data file), :class:`RunError` (a run
folder). The rules every file is read and written by live in
:mod:`toolkit.fileio`.
"""


class UserError(Exception):
    """Bad input a user can fix; scripts print it as one line, no traceback.
    """


class DataError(UserError):
    """A data file that is missing, unreadable, malformed or empty."""


class RunError(UserError):
    """A run folder whose files are missing, foreign or inconsistent."""
