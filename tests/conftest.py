from pathlib import Path

import pytest

from helpers import write_image


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
