"""The one exception type that reaches the user as a single line."""


class MuseError(Exception):
    """Bad input or configuration: the message names the file or key and what was expected.

    The command line prints ``muse: error: <message>`` and exits non-zero; no stack trace.
    """
