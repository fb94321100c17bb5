"""Errors that end a command with one clear message and exit 1."""


class UserError(Exception):
    """Bad input or an unusable environment: reported without a traceback, nothing touched."""
