"""The one exception type that reaches the user as a single line, and how it is reported."""

from __future__ import annotations

import contextlib
import errno
import sys
from pathlib import Path

from PIL import Image

IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class MuseError(Exception):
    """Bad input or configuration: the message names the file or key and what was expected.

    The command line prints ``muse: error: <message>`` and exits non-zero; no stack trace.
    """


def report(e: MuseError) -> None:
    print(f"muse: error: {e}", file=sys.stderr, flush=True)


def disk_full(e: BaseException) -> MuseError | None:
    """A full disk met outside :func:`muse.io.atomic_path` (which names its own output) as one
    line naming the file, or None for any other error."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return MuseError(f"{e.filename or 'an output'}: no space left on device")
    return None


@contextlib.contextmanager
def logged(log_path, outputs=()):
    """A workflow job: stderr (progress bars, warnings) goes to ``log_path``; a :class:`MuseError`
    is written there and to the original stderr as one line, then the process exits with status 1.
    No provenance sidecar ``<output>.meta.json`` outlives its output: a job that fails or is
    interrupted removes those of its ``outputs`` (which the workflow manager then deletes), and a
    job starting removes those whose output is gone (left by a killed run)."""
    sidecars = [Path(f"{o}.meta.json") for o in outputs]
    for meta, out in zip(sidecars, outputs):
        if not Path(out).exists():
            meta.unlink(missing_ok=True)
    original = sys.stderr
    with open(log_path, "w") as log:
        sys.stderr = log
        try:
            yield
        except BaseException as e:
            for meta in sidecars:
                meta.unlink(missing_ok=True)
            e = disk_full(e) or e
            if not isinstance(e, MuseError):
                raise
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
