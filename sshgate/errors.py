"""Errors that reach a person: each carries one line that says what was wrong and how to fix it.

The CLI prints a :class:`UserError` as ``error: <message>`` and exits with status 2; nothing that
derives from it is ever shown as a traceback.
"""


class UserError(Exception):
    """Bad input from a person or a file: the message is shown as it is, on one line."""


class ConfigError(UserError):
    """A configuration, policy or pod file that cannot be used. The message names file and line."""
