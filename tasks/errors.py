"""Errors a user can fix. Their message is one line that names the file, line and field."""


class InputError(ValueError):
    """Malformed input: the CLI prints str(exc) alone and exits non-zero, nothing is written."""
