"""Readers and writers for the on-disk layouts of the four Re-ID datasets.

Each reader returns :class:`Record` rows ``(path, pid, camid, split)`` with
split ∈ {train, val, query, gallery}; pids and camera ids are those written in the
files (relabelling happens at training). Each writer, next to its reader, lays out
:class:`Capture` images (the synthetic world's) the way the real release does.

==============  ==========================================================================
format          layout
==============  ==========================================================================
market1501      ``bounding_box_train/``, ``query/``, ``bounding_box_test/``;
                ``0002_c1s1_000451_03.jpg`` = pid 2, camera 1; pid −1 is junk (dropped),
                pid 0 a distractor (kept in the gallery); other files are ignored.
msmt17          V1 ``train/`` + ``test/`` or V2 ``mask_train_v2/`` + ``mask_test_v2/``, with
                ``list_{train,val,query,gallery}.txt`` of ``rel/path.jpg pid`` lines
                (train/val relative to the train folder, query/gallery to the test folder);
                camera = third ``_`` field of the file name.
cuhk03np        ``detected/`` or ``labeled/``, each with the three Market folders of
                ``0001_c1_01.png`` files.
cuhksysu        ``cropped_images/p{pid}_s{n}.jpg``: training only, one camera (0).
==============  ==========================================================================
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from muse.errors import MuseError, readable_image
from muse.io import atomic_path

MANIFEST_COLUMNS = ["path", "pid", "camid", "split", "domain"]
MANIFEST_SPLITS = ("train", "val", "query", "gallery")


@dataclass(frozen=True)
class Record:
    path: str
    pid: int
    camid: int
    split: str


@dataclass(frozen=True)
class Capture:
    """An image to write in a layout: its identity and camera, whether it may serve as a
    query, a twin box (CUHK03's ``labeled`` next to ``detected``) and the camera's time of day."""

    pid: int
    cam: int
    image: Image.Image
    quality: int = 90  # JPEG quality
    query: bool = False
    twin: Image.Image | None = None
    time: str = "noon"

    def save(self, path: Path, twin: bool = False) -> None:
        image = self.twin if twin and self.twin is not None else self.image
        if path.suffix == ".png":
            image.save(path, optimize=False)
        else:
            image.save(path, quality=self.quality)


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise MuseError(f"{path}: missing {what} folder")
    return path


def _scan(folder: Path, pattern: re.Pattern, suffix: str, split: str, fields) -> list[Record]:
    """Parse every ``*suffix`` file of ``folder`` with ``pattern``; ``fields(match) -> (pid, camid)``.

    Files with another suffix (``Thumbs.db``, ``.DS_Store``) are ignored; a ``*suffix`` file whose
    name does not parse is an error.
    """
    records = []
    for f in sorted(folder.iterdir()):
        if f.suffix.lower() != suffix:
            continue
        m = pattern.fullmatch(f.name)
        if m is None:
            raise MuseError(f"{f}: file name does not follow the {pattern.pattern} convention")
        pid, camid = fields(m)
        records.append(Record(str(f), pid, camid, split))
    return records


_MARKET = re.compile(r"(-?\d+)_c(\d+)s(\d+)_(\d+)_(\d+)\.jpg")
_MARKET_SPLITS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def read_market1501(root) -> list[Record]:
    """Market-1501: junk (pid −1) dropped, distractors (pid 0) kept."""
    return _read_market_like(Path(root), _MARKET, ".jpg")


def write_market1501(root: Path, train, test, rng=None, val_fraction: float = 0.0) -> None:
    """Train images in ``bounding_box_train/``, query candidates in ``query/``, the other test
    images (distractors and junk included) in ``bounding_box_test/`` with a stray ``Thumbs.db``
    as in the release; frames are counted per camera."""
    dirs = {k: root / k for k in ("bounding_box_train", "query", "bounding_box_test")}
    for d in dirs.values():
        d.mkdir()
    frame: dict[int, int] = defaultdict(int)

    def name(im: Capture) -> str:
        frame[im.cam] += 1
        n, person = frame[im.cam], im.pid if im.pid < 0 else f"{im.pid:04d}"
        return f"{person}_c{im.cam}s{1 + n // 500}_{n:06d}_{1 + n % 7:02d}.jpg"

    for im in train:
        im.save(dirs["bounding_box_train"] / name(im))
    for im in test:
        im.save(dirs["query" if im.query else "bounding_box_test"] / name(im))
    (dirs["bounding_box_test"] / "Thumbs.db").write_bytes(b"\0" * 16)


_CUHK03 = re.compile(r"(\d+)_c(\d+)_(\d+)\.png")
CUHK03_VARIANTS = ("detected", "labeled")


def read_cuhk03np(root, variant: str = "detected") -> list[Record]:
    """CUHK03-NP (767/700 split) from its ``detected`` or ``labeled`` boxes."""
    if variant not in CUHK03_VARIANTS:
        raise MuseError(f"cuhk03 variant '{variant}': expected one of {', '.join(CUHK03_VARIANTS)}")
    return _read_market_like(_require_dir(Path(root), "dataset root") / variant, _CUHK03, ".png")


def write_cuhk03np(root: Path, train, test, rng=None, val_fraction: float = 0.0) -> None:
    """The three Market folders twice: ``detected/`` with each image, ``labeled/`` with its twin
    box (the image itself without one); files numbered per identity and camera."""
    for variant in CUHK03_VARIANTS:
        for sub in _MARKET_SPLITS.values():
            (root / variant / sub).mkdir(parents=True)
    counter: dict[tuple, int] = defaultdict(int)
    for images, is_test in ((train, False), (test, True)):
        for im in images:
            counter[im.pid, im.cam] += 1
            sub = "bounding_box_train" if not is_test else "query" if im.query else "bounding_box_test"
            fname = f"{im.pid:04d}_c{im.cam}_{counter[im.pid, im.cam]:02d}.png"
            im.save(root / "detected" / sub / fname)
            im.save(root / "labeled" / sub / fname, twin=True)


def _read_market_like(root: Path, pattern: re.Pattern, suffix: str) -> list[Record]:
    _require_dir(root, "dataset root")
    records = []
    for split, sub in _MARKET_SPLITS.items():
        folder = _require_dir(root / sub, f"'{sub}'")
        rows = _scan(folder, pattern, suffix, split, lambda m: (int(m[1]), int(m[2])))
        rows = [r for r in rows if r.pid != -1]
        if not rows:
            raise MuseError(f"{folder}: empty split '{split}' (no {suffix} images)")
        records += rows
    return records


_MSMT_RELEASES = (("mask_train_v2", "mask_test_v2"), ("train", "test"))
_MSMT_LISTS = {"train": 0, "val": 0, "query": 1, "gallery": 1}  # split -> index of its folder


def read_msmt17(root) -> list[Record]:
    """MSMT17 V1 or V2 (whichever folders exist), from its four list files."""
    root = _require_dir(Path(root), "dataset root")
    folders = next(((root / a, root / b) for a, b in _MSMT_RELEASES if (root / a).is_dir()), None)
    if folders is None:
        raise MuseError(f"{root}: missing 'mask_train_v2/' (V2) or 'train/' (V1) folder")
    _require_dir(folders[1], "test")
    records, seen = [], {}
    for split, which in _MSMT_LISTS.items():
        listing = root / f"list_{split}.txt"
        if not listing.is_file():
            raise MuseError(f"{listing}: missing list file")
        rows = []
        for n, line in enumerate(listing.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise MuseError(f"{listing}:{n}: expected 'relative/path.jpg pid', got {line!r}")
            if Path(parts[0]).is_absolute() or ".." in Path(parts[0]).parts:
                raise MuseError(f"{listing}:{n}: {parts[0]!r} leaves the dataset folder")
            path = folders[which] / parts[0]
            if str(path) in seen:
                raise MuseError(f"{listing}:{n}: {parts[0]} is listed twice (also {seen[str(path)]})")
            seen[str(path)] = f"{listing.name}:{n}"
            fields = path.name.split("_")
            if len(fields) < 3 or not fields[2].isdigit():
                raise MuseError(f"{path}: file name has no camera in its third '_' field")
            if not path.is_file():
                raise MuseError(f"{path}: listed in {listing.name} but missing")
            rows.append(Record(str(path), int(parts[1]), int(fields[2]), split))
        if not rows and split != "val":
            raise MuseError(f"{listing}: empty split '{split}'")
        records += rows
    return records


def write_msmt17(root: Path, train, test, rng: np.random.Generator, val_fraction: float = 0.0) -> None:
    """V2 folders of ``pid/`` sub-folders and the four list files; ids numbered from 0 in each
    release folder, a ``val_fraction`` of the train images listed as val, random name fields."""
    lists = {k: [] for k in ("train", "val", "query", "gallery")}
    for folder, images in (("mask_train_v2", train), ("mask_test_v2", test)):
        first = min((im.pid for im in images), default=0)
        counter: dict[int, int] = defaultdict(lambda: -1)
        for im in images:
            pid = im.pid - first
            counter[pid] += 1
            rel = (
                f"{pid:04d}/{pid:04d}_{counter[pid]:03d}_{im.cam:02d}_0{3 + im.cam % 2}0{1 + im.cam % 9}"
                f"{im.time}_{int(rng.integers(10000)):04d}_{int(rng.integers(3))}.jpg"
            )
            (root / folder / rel).parent.mkdir(parents=True, exist_ok=True)
            im.save(root / folder / rel)
            if folder == "mask_train_v2":
                split = "val" if rng.random() < val_fraction else "train"
            else:
                split = "query" if im.query else "gallery"
            lists[split].append(f"{rel} {pid}")
    for split, lines in lists.items():
        (root / f"list_{split}.txt").write_text("".join(f"{line}\n" for line in lines))


_CUHKSYSU = re.compile(r"p(\d+)_s(\d+)\.jpg")


def read_cuhksysu(root) -> list[Record]:
    """CUHK-SYSU crops for DG training: every image is ``train``, camera 0."""
    folder = _require_dir(_require_dir(Path(root), "dataset root") / "cropped_images", "'cropped_images'")
    records = _scan(folder, _CUHKSYSU, ".jpg", "train", lambda m: (int(m[1]), 0))
    if not records:
        raise MuseError(f"{folder}: empty split 'train' (no p*_s*.jpg images)")
    return records


def write_cuhksysu(root: Path, train, test, rng: np.random.Generator, val_fraction: float = 0.0) -> None:
    """Every image in ``cropped_images/`` as ``p{pid}_s{scene}.jpg``, scenes numbered at random."""
    folder = root / "cropped_images"
    folder.mkdir()
    images = train + test
    for im, s in zip(images, rng.permutation(len(images)) + 1):
        im.save(folder / f"p{im.pid}_s{s}.jpg")


@dataclass(frozen=True)
class Layout:
    """One dataset's on-disk layout (the module's table): its reader and its writer, the domain
    it is by default, and what it holds beside training images."""

    read: Callable[..., list[Record]]
    write: Callable[..., None]
    domain: str
    tested: bool = True  # a query and a gallery (CUHK-SYSU: training images only)
    gallery_extras: bool = False  # distractors (pid 0) and junk (pid −1) in the gallery
    val_list: bool = False  # a validation list beside the training list
    published: tuple[int, int, int] = (0, 0, 0)  # the release's (train, query, gallery) images


# The registry: a new dataset is one entry here (and its format in the config schema's enum).
LAYOUTS = {
    "market1501": Layout(read_market1501, write_market1501, "MA", gallery_extras=True, published=(12936, 3368, 15913)),
    "msmt17": Layout(read_msmt17, write_msmt17, "MS", val_list=True, published=(32621, 11659, 82161)),
    "cuhk03np": Layout(read_cuhk03np, write_cuhk03np, "C3", published=(7365, 1400, 5332)),
    "cuhksysu": Layout(read_cuhksysu, write_cuhksysu, "CS", tested=False, published=(34574, 0, 0)),
}


def layout(fmt: str) -> Layout:
    """The :class:`Layout` named ``fmt``; an unknown one is a one-line error."""
    if fmt not in LAYOUTS:
        raise MuseError(f"unknown dataset format '{fmt}': expected one of {', '.join(LAYOUTS)}")
    return LAYOUTS[fmt]


def write(fmt: str, root: Path, train, test, rng: np.random.Generator, val_fraction: float = 0.0) -> None:
    """Write ``train`` and ``test`` :class:`Capture` lists at ``root`` in the named format; ``rng``
    draws what the release's names hold at random (MSMT17, CUHK-SYSU)."""
    layout(fmt).write(root, train, test, rng, val_fraction)


def check_layout(fmt: str, root, variant: str | None = None) -> None:
    """The folders and list files of the ``fmt`` layout exist under ``root`` (nothing listed or
    decoded: cheap enough to run before any job); the first missing one is a one-line error."""
    root = _require_dir(Path(root), "dataset root")
    if fmt in ("market1501", "cuhk03np"):
        base = root
        if fmt == "cuhk03np":
            variant = variant or CUHK03_VARIANTS[0]
            base = _require_dir(root / variant, f"'{variant}' (cuhk03np boxes)")
        for sub in _MARKET_SPLITS.values():
            _require_dir(base / sub, f"'{sub}' ({fmt})")
    elif fmt == "msmt17":
        if not any((root / a).is_dir() and (root / b).is_dir() for a, b in _MSMT_RELEASES):
            raise MuseError(f"{root}: missing 'mask_train_v2/' and 'mask_test_v2/' (V2) or 'train/' and 'test/' (V1)")
        for split in _MSMT_LISTS:
            if not (root / f"list_{split}.txt").is_file():
                raise MuseError(f"{root / f'list_{split}.txt'}: missing list file (msmt17)")
    elif fmt == "cuhksysu":
        _require_dir(root / "cropped_images", "'cropped_images' (cuhksysu)")
    else:
        layout(fmt)


def read(fmt: str, root, **options) -> list[Record]:
    """Read a dataset in the named format; ``options`` go to the reader (``variant`` for cuhk03np)."""
    return layout(fmt).read(root, **options)


def check_images(records: list[Record], progress: bool = True) -> None:
    """Decode every image fully; the first unreadable one is an error naming its path."""
    for r in tqdm(records, desc="checking images", unit="img", disable=not progress):
        with readable_image(r.path), Image.open(r.path) as im:
            im.load()


def manifest(
    fmt: str, root, domain: str | None = None, check: bool = True, progress: bool = True, **options
) -> pd.DataFrame:
    """The manifest table (``path,pid,camid,split,domain``) of a dataset on disk."""
    records = read(fmt, root, **options)
    if check:
        check_images(records, progress)
    df = pd.DataFrame([r.__dict__ for r in records], columns=MANIFEST_COLUMNS[:-1])
    df["domain"] = domain or layout(fmt).domain
    return df


def write_manifest(df: pd.DataFrame, path) -> None:
    """Write a manifest CSV atomically, relative image paths rewritten relative to the manifest's
    folder (absolute ones kept), so that :func:`read_manifest` finds them from any directory."""
    folder = Path(path).parent
    out = df[MANIFEST_COLUMNS].copy()
    out["path"] = [p if os.path.isabs(p) else os.path.relpath(p, folder) for p in out.path]
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)


def read_manifest(path) -> pd.DataFrame:
    """Read a manifest CSV written by :func:`write_manifest`: its relative image paths are resolved
    against the manifest's folder (and normalised, so that read from where it was written they are
    the paths it was given). Every split is one of :data:`MANIFEST_SPLITS` and no image is listed
    twice; the first offence is named by its line."""
    path = Path(path)
    if not path.is_file():
        raise MuseError(f"{path}: manifest not found")
    try:
        df = pd.read_csv(path, dtype={"path": str, "pid": int, "camid": int, "split": str, "domain": str})
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise MuseError(
            f"{path}: not a manifest (columns {', '.join(MANIFEST_COLUMNS)}; pid, camid integers): "
            f"{str(e).splitlines()[0]}"
        ) from None
    if list(df.columns) != MANIFEST_COLUMNS:
        raise MuseError(f"{path}: columns {list(df.columns)}, expected {MANIFEST_COLUMNS}")
    if df.empty:
        raise MuseError(f"{path}: no rows")
    bad = ~df.split.isin(MANIFEST_SPLITS)
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise MuseError(f"{path}:{i + 2}: split '{df.split.iloc[i]}', expected one of {', '.join(MANIFEST_SPLITS)}")
    df["path"] = [p if os.path.isabs(p) else os.path.normpath(os.path.join(path.parent, p)) for p in df.path]
    twice = df.path.duplicated()
    if twice.any():
        i = int(np.argmax(twice.to_numpy()))
        first = int(np.argmax((df.path == df.path.iloc[i]).to_numpy()))
        raise MuseError(f"{path}:{i + 2}: {df.path.iloc[i]} is listed twice (first on line {first + 2})")
    return df


def check_paths(df: pd.DataFrame, manifest_path) -> None:
    """Every image of the rows of a manifest (as :func:`read_manifest` read it) exists; the first
    that does not is named with its manifest line."""
    missing = [(i, p) for i, p in zip(df.index, df.path) if not os.path.isfile(p)]
    if missing:
        i, p = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise MuseError(f"{manifest_path}:{i + 2}: {p}: image not found{more}")
