import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image(path: Path, value: int = 128, size=(16, 8)) -> Path:
    """A small valid image at ``path`` (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)
    return path


@pytest.fixture
def market(tmp_path) -> Path:
    """A tiny Market-1501 folder: ids 2 and 7, a distractor, junk and a stray Thumbs.db."""
    root = tmp_path / "Market-1501-v15.09.15"
    for name in ("0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c3s2_001201_02.jpg"):
        write_image(root / "bounding_box_train" / name)
    for name in ("0010_c1s1_000101_01.jpg", "0011_c2s1_000102_01.jpg"):
        write_image(root / "query" / name)
    for name in (
        "0010_c4s1_000301_01.jpg",
        "0011_c5s1_000302_01.jpg",
        "0000_c1s1_000001_00.jpg",
        "-1_c2s1_000002_00.jpg",
    ):
        write_image(root / "bounding_box_test" / name)
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"\0\1")
    return root


def muse(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "muse.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def fails_with_one_line(res, *fragments):
    assert res.returncode != 0
    errors = [ln for ln in res.stderr.splitlines() if re.match(r"muse( [\w-]+)*: error: ", ln)]
    assert len(errors) == 1 and res.stderr.rstrip().endswith(errors[0]), res.stderr
    assert "Traceback" not in res.stderr
    for f in fragments:
        assert f in errors[0], errors[0]
