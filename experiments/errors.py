"""What the `faasdag` command line reports as the user's mistake: one line, exit status 2."""


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""
