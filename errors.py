"""The error a user can fix: bad flags, bad files, a folder that is not a
run. Scripts print it as one ``error: ...`` line with no traceback (see
:func:`toolkit.cli.script`). Every module may import this one; it imports
nothing of the project."""


class UserError(Exception):
    """Bad input a user can fix; scripts print it as one line, no traceback.
    """
