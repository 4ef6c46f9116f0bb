"""Artefact I/O: atomic writes, provenance sidecars and the features file (docs/architecture.md,
"Artefact formats" and "Reliability")."""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from muse.errors import MuseError, disk_full

_TRACKED_PACKAGES = ("muse", "numpy", "torch", "transformers", "peft", "open_clip_torch", "pillow")


_FULL = 2**20  # free bytes below which a failed write is put down to a full disk


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; move it onto ``path`` only if the block succeeds.

    Works for files and directories alike, so that a reader never sees a half-written artefact
    and a killed writer leaves only a ``*.tmp`` name: a file or a new directory is moved in with
    one ``os.replace``; a directory replacing an existing one is swapped with it in one atomic
    exchange (Linux ``renameat2(RENAME_EXCHANGE)``), so that ``path`` holds the whole old or the
    whole new directory at every moment, and the old one is deleted afterwards. The old
    artefact's provenance sidecar ``<path>.meta.json`` (:func:`write_meta`, written after the
    artefact) is removed just before: a kill in between leaves no sidecar, never a stale one.
    A folder that cannot be written and a full disk (whatever the writer inside raised) are one
    :class:`MuseError` line naming ``path``; the temporary sibling is removed either way.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise MuseError(f"{path.parent}: not writable ({e.strerror})") from None
    target = tmp / path.name
    try:
        yield target
        Path(f"{path}.meta.json").unlink(missing_ok=True)
        if target.is_dir() and path.is_dir() and not path.is_symlink():
            _exchange(target, path)
        else:
            os.replace(target, file_output(path) if target.is_file() else path)
    except Exception as e:
        hidden = not isinstance(e, MuseError) and shutil.disk_usage(path.parent).free < _FULL
        if disk_full(e) or hidden:
            raise MuseError(f"{path}: no space left on device") from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def file_output(path: str | os.PathLike) -> Path:
    """``path`` as the destination of a file; an existing directory there is an error."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise MuseError(f"{path}: is a directory; expected the path of a file to write")
    return path


def _exchange(a: Path, b: Path) -> None:
    """Swap two paths atomically (``renameat2`` with ``RENAME_EXCHANGE``). Where the file system
    cannot (some network file systems), ``b`` is renamed aside, ``a`` moved in and the old one
    left at ``a``: a kill between the two renames then leaves both whole, but not at ``b``."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_exchange = -100, 2
    if libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return
    err = ctypes.get_errno()
    if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        raise MuseError(f"{b}: cannot replace the directory ({os.strerror(err)})")
    aside = a.with_name(a.name + ".old")
    os.replace(b, aside)
    os.replace(a, b)
    os.replace(aside, a)


@contextlib.contextmanager
def exclusive(lock: Path):
    """Hold an exclusive lock on the file ``lock`` (released by the OS if the process dies), or
    refuse in one line while another process holds it: one writer per output. Of the processes
    of one distributed launch (``RANK`` set), rank 0 holds it for all."""
    import fcntl

    if int(os.environ.get("RANK", "0")) > 0:
        yield
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MuseError(f"{lock}: another process is writing this output") from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)


def one_writer(fn):
    """Run ``fn`` holding ``<out>.lock`` (:func:`exclusive`), ``out`` being its argument of that name."""
    import inspect

    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def locked(*args, **kwargs):
        with exclusive(Path(f"{signature.bind(*args, **kwargs).arguments['out']}.lock")):
            return fn(*args, **kwargs)

    return locked


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (Path,)):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file (or, for a directory, of its sorted relative paths and file contents)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def digest(*parts) -> str:
    """SHA-256 of JSON-able values and arrays (their dtype, shape and bytes), in order."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray) and part.dtype.kind in "OUS":
            h.update(f"str{part.shape}".encode() + "\0".join(map(str, part.ravel())).encode())
        elif isinstance(part, np.ndarray):
            a = np.ascontiguousarray(part)
            h.update(f"{a.dtype.str}{a.shape}".encode() + a.tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=_jsonable).encode())
    return h.hexdigest()


def files_digest(path: str | os.PathLike | None) -> str | None:
    """A cheap identity of a file or directory (e.g. a multi-GB checkpoint): the digest of its
    files' relative paths, sizes and modification times; None for None."""
    if path is None:
        return None
    path = Path(path)
    if not path.exists():
        raise MuseError(f"{path}: not found")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return digest(
        [[str(f.relative_to(path)) if path.is_dir() else f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    )


def resumable(checkpoint: str | os.PathLike, found: str | None, expected: str) -> bool:
    """Whether a checkpoint made from inputs with fingerprint ``found`` may be resumed under
    ``expected``; when not, says so on stderr (the caller starts over). A checkpoint without a
    fingerprint (an empty one, e.g. cut by a full disk) is treated as absent, without a word."""
    if found == expected:
        return True
    if not found:
        return False
    print(f"{checkpoint}: made from other inputs or parameters; starting over", file=sys.stderr)
    return False


def provenance(config: dict | None = None, inputs: list | tuple = ()) -> dict:
    """The sidecar record of an artefact: config slice, input hashes, package versions, git commit."""
    versions = {}
    for name in _TRACKED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "config": config or {},
        "inputs": {str(p): sha256(p) for p in inputs},
        "packages": versions,
        "git_commit": commit,
    }


def write_meta(artefact: str | os.PathLike, config: dict | None = None, inputs=()) -> Path:
    """Write ``<artefact>.meta.json`` beside an artefact; returns its path."""
    meta = Path(f"{artefact}.meta.json")
    write_json(meta, provenance(config, inputs))
    return meta


@dataclass(frozen=True)
class Features:
    """Rows of a features file (docs/architecture.md, "Artefact formats"):
    ``feats`` (N,d) float32 with ``pids``, ``camids``,
    ``paths`` and ``split`` per row."""

    feats: np.ndarray
    pids: np.ndarray
    camids: np.ndarray
    paths: np.ndarray
    split: np.ndarray

    @functools.cached_property
    def fingerprint(self) -> str:
        """The identity of these rows: :func:`digest` of features, ids, cameras and paths
        (computed once per object)."""
        return digest(self.feats, self.pids, self.camids, self.paths, self.split)

    def subset(self, name: str) -> Features:
        """The rows whose split is ``name`` ("query", "gallery" or "train")."""
        keep = self.split == name
        return Features(*(getattr(self, f)[keep] for f in _FEATURE_FIELDS))

    @property
    def test_sizes(self) -> tuple[int, int]:
        """(Q, G): how many query and gallery rows."""
        return int((self.split == "query").sum()), int((self.split == "gallery").sum())

    def query_gallery(self, path="features") -> tuple[Features, Features]:
        """The query and gallery rows, failing clearly when either is empty."""
        return self.require("query", path), self.require("gallery", path)

    def require(self, name: str, path) -> Features:
        """:meth:`subset`, failing clearly when the split is empty."""
        sub = self.subset(name)
        if len(sub.pids) == 0:
            raise MuseError(f"{path}: no rows with split '{name}'")
        return sub


_FEATURE_FIELDS = ("feats", "pids", "camids", "paths", "split")


def save_features(path, feats: Features) -> None:
    """Write a features ``.npz`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{f: getattr(feats, f) for f in _FEATURE_FIELDS})


def _load_npz(path: Path, fields, what: str, optional=()) -> dict:
    """The named arrays of an ``.npz`` file, and those of ``optional`` that it holds; a missing
    file, array or a broken archive is an error."""
    if not path.is_file():
        raise MuseError(f"{path}: {what} file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [f for f in fields if f not in z.files]
            if missing:
                raise MuseError(f"{path}: missing array(s) {', '.join(missing)}")
            return {f: z[f] for f in (*fields, *optional) if f in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise MuseError(f"{path}: not a readable .npz ({e or type(e).__name__})") from None


def load_features(path) -> Features:
    """Read and validate a features ``.npz``: all keys present, one row per image, finite values."""
    path = Path(path)
    arrays = _load_npz(path, _FEATURE_FIELDS, "features")
    feats = arrays["feats"]
    if feats.ndim != 2:
        raise MuseError(f"{path}: 'feats' must be 2-D (N, d), got shape {feats.shape}")
    n = feats.shape[0]
    for f in _FEATURE_FIELDS[1:]:
        if arrays[f].shape != (n,):
            raise MuseError(f"{path}: '{f}' has shape {arrays[f].shape}, expected ({n},)")
    if not np.isfinite(feats).all():
        raise MuseError(f"{path}: 'feats' contains NaN or inf")
    zero = int((~feats.any(axis=1)).sum())
    if n > 1 and (zero or not np.ptp(feats, axis=0).any()):
        what = f"{zero} of {n} rows are all zero" if zero else "all rows are equal"
        print(f"muse: warning: {path}: 'feats' is degenerate ({what}): their distances tie", file=sys.stderr)
    arrays["feats"] = feats.astype(np.float32, copy=False)
    arrays["split"] = arrays["split"].astype(str)
    arrays["paths"] = arrays["paths"].astype(str)
    return Features(**arrays)


@dataclass(frozen=True)
class Scores:
    """A pair-scores file (docs/architecture.md, "Artefact formats"):
    per query, gallery candidates ``cand`` (Q, Cmax) sorted by
    base distance and the MLLM's logits ``s_yes``, ``s_no`` (Q, Cmax). ``rows`` (first, stop) are
    the query rows of the features file they cover and ``features`` its fingerprint
    (:meth:`Features.fingerprint`); both are written by ``muse score`` and checked by merges and
    evaluations (None in a file written by hand); ``source`` the path it was read from."""

    cand: np.ndarray
    s_yes: np.ndarray
    s_no: np.ndarray
    rows: tuple[int, int] | None = None
    features: str | None = None
    source: str | None = None

    @property
    def width(self) -> int:
        return self.cand.shape[1]

    @classmethod
    def concat(cls, pieces: list[Scores], rows: tuple[int, int] | None = None, features: str | None = None) -> Scores:
        """Row blocks (in query order) as one file's arrays, covering ``rows`` of ``features``."""
        return cls(*(np.concatenate([getattr(p, f) for p in pieces]) for f in _SCORE_FIELDS), rows, features)


_SCORE_FIELDS = ("cand", "s_yes", "s_no")


def save_scores(path, scores: Scores) -> None:
    """Write a pair-scores ``.npz`` atomically."""
    extra = {} if scores.rows is None else {"rows": np.asarray(scores.rows, np.int64)}
    if scores.features is not None:
        extra["features"] = np.asarray(scores.features)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                cand=scores.cand.astype(np.int32),
                s_yes=scores.s_yes.astype(np.float32),
                s_no=scores.s_no.astype(np.float32),
                **extra,
            )


def load_scores(path, Q: int | None, G: int, features: Features | None = None) -> Scores:
    """Read a pair-scores ``.npz`` and check it against a test set of Q queries (any number when
    None, e.g. a shard) and G gallery images: shapes, finite logits, integer candidates that are
    distinct gallery indices. With ``features`` (the test set's file), a file that names its
    features must name these, and cover all their queries."""
    path = Path(path)
    arrays = _load_npz(path, _SCORE_FIELDS, "scores", optional=("rows", "features"))
    if "rows" in arrays:
        arrays["rows"] = tuple(int(x) for x in arrays["rows"])
    if "features" in arrays:
        arrays["features"] = str(arrays["features"])
    s = Scores(**arrays, source=str(path))
    if s.cand.ndim != 2 or (Q is not None and s.cand.shape[0] != Q):
        raise MuseError(f"{path}: 'cand' has shape {s.cand.shape}, expected ({Q}, C) for the {Q} queries")
    if s.cand.dtype.kind not in "iu":
        raise MuseError(f"{path}: 'cand' holds {s.cand.dtype} values, expected gallery indices (integers)")
    for f in ("s_yes", "s_no"):
        if getattr(s, f).shape != s.cand.shape:
            raise MuseError(f"{path}: '{f}' has shape {getattr(s, f).shape}, expected {s.cand.shape}")
        if not np.isfinite(getattr(s, f)).all():
            raise MuseError(f"{path}: '{f}' contains NaN or inf")
    if s.cand.size and (s.cand.min() < 0 or s.cand.max() >= G):
        raise MuseError(f"{path}: 'cand' holds gallery indices outside [0, {G})")
    if s.cand.size and (np.diff(np.sort(s.cand, axis=1), axis=1) == 0).any():
        raise MuseError(f"{path}: 'cand' repeats a gallery index within a query's candidates")
    if features is not None and s.features is not None and s.features != features.fingerprint:
        raise MuseError(f"{path}: scored on another features file than the one given")
    if features is not None and s.rows is not None and s.rows != (0, features.test_sizes[0]):
        raise MuseError(f"{path}: covers queries {s.rows[0]}..{s.rows[1] - 1} only, not all {features.test_sizes[0]}")
    return s
