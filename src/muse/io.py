"""Artefact I/O: atomic writes, provenance sidecars and the features file (DESIGN §5)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterator

import numpy as np

from muse.errors import MuseError

_TRACKED_PACKAGES = ("muse", "numpy", "torch", "transformers", "peft", "open_clip_torch", "pillow")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only if the block succeeds.

    Works for files and directories alike: whatever the block writes at the yielded path is
    moved into place in one ``os.replace`` (directories: the old one is removed first), so a
    reader never sees a half-written artefact and a killed writer leaves only a ``*.tmp`` name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if target.is_dir() and path.is_dir():
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


def provenance(config: dict | None = None, inputs: list | tuple = ()) -> dict:
    """The sidecar record of an artefact: config slice, input hashes, package versions, git commit."""
    versions = {}
    for name in _TRACKED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
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
    """Rows of a features file (DESIGN §5): ``feats`` (N,d) float32 with ``pids``, ``camids``,
    ``paths`` and ``split`` per row."""

    feats: np.ndarray
    pids: np.ndarray
    camids: np.ndarray
    paths: np.ndarray
    split: np.ndarray

    def subset(self, name: str) -> "Features":
        """The rows whose split is ``name`` ("query", "gallery" or "train")."""
        keep = self.split == name
        return Features(*(getattr(self, f)[keep] for f in _FEATURE_FIELDS))

    @property
    def test_sizes(self) -> tuple[int, int]:
        """(Q, G): how many query and gallery rows."""
        return int((self.split == "query").sum()), int((self.split == "gallery").sum())

    def query_gallery(self, path="features") -> tuple["Features", "Features"]:
        """The query and gallery rows, failing clearly when either is empty."""
        return self.require("query", path), self.require("gallery", path)

    def require(self, name: str, path) -> "Features":
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


def _load_npz(path: Path, fields, what: str) -> dict:
    """The named arrays of an ``.npz`` file; a missing file, array or a broken archive is an error."""
    if not path.is_file():
        raise MuseError(f"{path}: {what} file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [f for f in fields if f not in z.files]
            if missing:
                raise MuseError(f"{path}: missing array(s) {', '.join(missing)}")
            return {f: z[f] for f in fields}
    except (OSError, ValueError) as e:
        raise MuseError(f"{path}: not a readable .npz ({e})") from None


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
    arrays["feats"] = feats.astype(np.float32, copy=False)
    arrays["split"] = arrays["split"].astype(str)
    arrays["paths"] = arrays["paths"].astype(str)
    return Features(**arrays)


@dataclass(frozen=True)
class Scores:
    """A pair-scores file (DESIGN §5): per query, gallery candidates ``cand`` (Q, Cmax) sorted by
    base distance and the MLLM's logits ``s_yes``, ``s_no`` (Q, Cmax)."""

    cand: np.ndarray
    s_yes: np.ndarray
    s_no: np.ndarray

    @property
    def width(self) -> int:
        return self.cand.shape[1]

    @classmethod
    def concat(cls, pieces: list["Scores"]) -> "Scores":
        """Row blocks (in query order) as one file's arrays."""
        return cls(*(np.concatenate([getattr(p, f) for p in pieces]) for f in _SCORE_FIELDS))


_SCORE_FIELDS = ("cand", "s_yes", "s_no")


def save_scores(path, scores: Scores) -> None:
    """Write a pair-scores ``.npz`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, cand=scores.cand.astype(np.int32), s_yes=scores.s_yes.astype(np.float32),
                     s_no=scores.s_no.astype(np.float32))


def load_scores(path, Q: int | None, G: int) -> Scores:
    """Read a pair-scores ``.npz`` and check it against a test set of Q queries (any number when
    None, e.g. a shard) and G gallery images."""
    path = Path(path)
    s = Scores(**_load_npz(path, _SCORE_FIELDS, "scores"))
    if s.cand.ndim != 2 or (Q is not None and s.cand.shape[0] != Q):
        raise MuseError(f"{path}: 'cand' has shape {s.cand.shape}, expected ({Q}, C) for the {Q} queries")
    for f in ("s_yes", "s_no"):
        if getattr(s, f).shape != s.cand.shape:
            raise MuseError(f"{path}: '{f}' has shape {getattr(s, f).shape}, expected {s.cand.shape}")
        if not np.isfinite(getattr(s, f)).all():
            raise MuseError(f"{path}: '{f}' contains NaN or inf")
    if s.cand.size and (s.cand.min() < 0 or s.cand.max() >= G):
        raise MuseError(f"{path}: 'cand' holds gallery indices outside [0, {G})")
    return s
