"""The one exception type that reaches the user as a single line, and how it is reported."""

from __future__ import annotations

import contextlib
import sys

from PIL import Image

IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class MuseError(Exception):
    """Bad input or configuration: the message names the file or key and what was expected.

    The command line prints ``muse: error: <message>`` and exits non-zero; no stack trace.
    """


def report(e: MuseError) -> None:
    print(f"muse: error: {e}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def logged(log_path):
    """Send stderr (progress bars, warnings) to ``log_path``; a :class:`MuseError` is written there
    and to the original stderr as one line, then the process exits with status 1."""
    original = sys.stderr
    with open(log_path, "w") as log:
        sys.stderr = log
        try:
            yield
        except MuseError as e:
            report(e)
            sys.stderr = original
            report(e)
            raise SystemExit(1) from None
        finally:
            sys.stderr = original


@contextlib.contextmanager
def readable_image(path):
    """Turn a failure to decode the image at ``path`` (broken, truncated, a decompression bomb)
    into one :class:`MuseError` line naming it."""
    try:
        yield
    except IMAGE_ERRORS as e:
        reason = str(e).replace(f" '{path}'", "")
        raise MuseError(f"{path}: unreadable image ({reason})") from None
