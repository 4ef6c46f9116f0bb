"""Dataset readers on tiny folders in the real layouts."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from muse.data import formats
from muse.data.convert import convert_cuhksysu
from muse.errors import MuseError

from helpers import write_image


def by_name(records):
    return {r.path.rsplit("/", 1)[-1]: r for r in records}


def test_market_reads_splits_keeps_distractors_drops_junk(market):
    recs = by_name(formats.read_market1501(market))
    assert set(recs) == {
        "0002_c1s1_000451_03.jpg",
        "0002_c2s1_000551_01.jpg",
        "0007_c3s2_001201_02.jpg",
        "0010_c1s1_000101_01.jpg",
        "0011_c2s1_000102_01.jpg",
        "0010_c4s1_000301_01.jpg",
        "0011_c5s1_000302_01.jpg",
        "0000_c1s1_000001_00.jpg",
    }
    assert recs["0002_c2s1_000551_01.jpg"] == formats.Record(
        str(market / "bounding_box_train" / "0002_c2s1_000551_01.jpg"), 2, 2, "train"
    )
    assert recs["0000_c1s1_000001_00.jpg"].split == "gallery" and recs["0000_c1s1_000001_00.jpg"].pid == 0
    assert recs["0011_c2s1_000102_01.jpg"].split == "query"


def test_market_broken_name_is_named(market):
    bad = write_image(market / "query" / "12_c1_x.jpg")
    with pytest.raises(MuseError, match=str(bad)):
        formats.read_market1501(market)


def test_missing_root_and_folder(tmp_path, market):
    with pytest.raises(MuseError, match="missing dataset root"):
        formats.read_market1501(tmp_path / "nope")
    (market / "query").rename(market / "q")
    with pytest.raises(MuseError, match="query.*missing 'query' folder"):
        formats.read_market1501(market)


def test_empty_split(market):
    for f in (market / "query").iterdir():
        f.unlink()
    with pytest.raises(MuseError, match="empty split 'query'"):
        formats.read_market1501(market)


def write_msmt(root, release):
    train_dir, test_dir = {"v1": ("train", "test"), "v2": ("mask_train_v2", "mask_test_v2")}[release]
    lists = {
        "train": ["0000/0000_000_01_0303morning_0015_0.jpg 0", "0001/0001_003_07_0303noon_0930_1.jpg 1"],
        "val": ["0000/0000_001_02_0303morning_0020_0.jpg 0"],
        "query": ["0000/0000_000_12_0113morning_0001_0.jpg 0"],
        "gallery": ["0000/0000_004_15_0113noon_0102_2.jpg 0", "0003/0003_000_03_0113noon_0200_0.jpg 3"],
    }
    for split, lines in lists.items():
        folder = root / (train_dir if split in ("train", "val") else test_dir)
        for line in lines:
            write_image(folder / line.split()[0])
        (root / f"list_{split}.txt").write_text("\n".join(lines) + "\n")
    return lists


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("0000/0000_000_01_0303morning_0015_0.jpg 0", "is listed twice (also list_train.txt:1)"),
        ("../0000_000_01_0303morning_0015_0.jpg 0", "leaves the dataset folder"),
        ("/etc/0000_000_01_0303morning_0015_0.jpg 0", "leaves the dataset folder"),
    ],
)
def test_msmt17_list_duplicates_and_escapes(tmp_path, line, fragment):
    write_msmt(tmp_path, "v2")
    listing = tmp_path / "list_val.txt"
    listing.write_text(listing.read_text() + line + "\n")
    with pytest.raises(MuseError, match=f"list_val.txt:2: .*{re.escape(fragment)}"):
        formats.read_msmt17(tmp_path)


@pytest.mark.parametrize("release", ["v1", "v2"])
def test_msmt17_both_releases(tmp_path, release):
    write_msmt(tmp_path, release)
    recs = by_name(formats.read_msmt17(tmp_path))
    assert {r.split for r in recs.values()} == {"train", "val", "query", "gallery"}
    assert recs["0001_003_07_0303noon_0930_1.jpg"].camid == 7
    assert recs["0001_003_07_0303noon_0930_1.jpg"].pid == 1
    assert recs["0000_001_02_0303morning_0020_0.jpg"].split == "val"
    assert recs["0000_004_15_0113noon_0102_2.jpg"].camid == 15
    assert recs["0000_004_15_0113noon_0102_2.jpg"].split == "gallery"
    assert len(recs) == 6


def test_msmt17_bad_list_line_and_missing_file(tmp_path):
    write_msmt(tmp_path, "v2")
    (tmp_path / "list_query.txt").write_text("0000/0000_000_12_0113morning_0001_0.jpg\n")
    with pytest.raises(MuseError, match=r"list_query.txt:1: expected 'relative/path.jpg pid'"):
        formats.read_msmt17(tmp_path)
    (tmp_path / "list_query.txt").write_text("0000/0000_009_12_0113morning_0001_0.jpg 0\n")
    with pytest.raises(MuseError, match="0000_009_12_0113morning_0001_0.jpg: listed in list_query.txt but missing"):
        formats.read_msmt17(tmp_path)


def test_msmt17_unknown_layout(tmp_path):
    with pytest.raises(MuseError, match="mask_train_v2"):
        formats.read_msmt17(tmp_path)


@pytest.mark.parametrize("variant", ["detected", "labeled"])
def test_cuhk03np_variants(tmp_path, variant):
    for v in ("detected", "labeled"):
        write_image(tmp_path / v / "bounding_box_train" / f"0001_c1_0{1 + (v == 'labeled')}.png")
        write_image(tmp_path / v / "query" / "0002_c2_01.png")
        write_image(tmp_path / v / "bounding_box_test" / "0002_c1_01.png")
    recs = formats.read_cuhk03np(tmp_path, variant)
    assert all(f"/{variant}/" in r.path for r in recs)
    assert [(r.pid, r.camid, r.split) for r in recs] == [(1, 1, "train"), (2, 2, "query"), (2, 1, "gallery")]
    with pytest.raises(MuseError, match="cuhk03 variant 'both'"):
        formats.read_cuhk03np(tmp_path, "both")


def test_cuhk03np_ignores_jpg_strays_rejects_bad_png(tmp_path):
    for sub, name in (
        ("bounding_box_train", "0001_c1_01.png"),
        ("query", "0002_c2_01.png"),
        ("bounding_box_test", "0002_c1_01.png"),
    ):
        write_image(tmp_path / "detected" / sub / name)
    write_image(tmp_path / "detected" / "query" / "preview.jpg")
    assert len(formats.read_cuhk03np(tmp_path)) == 3
    write_image(tmp_path / "detected" / "query" / "0002-c2-01.png")
    with pytest.raises(MuseError, match="0002-c2-01.png: file name does not follow"):
        formats.read_cuhk03np(tmp_path)


def test_cuhksysu(tmp_path):
    for name in ("p1_s5.jpg", "p1_s9.jpg", "p11422_s16037.jpg"):
        write_image(tmp_path / "cropped_images" / name)
    recs = formats.read_cuhksysu(tmp_path)
    assert sorted((r.pid, r.camid, r.split) for r in recs) == [(1, 0, "train"), (1, 0, "train"), (11422, 0, "train")]


def test_unreadable_image_is_named(market):
    bad = market / "query" / "0012_c3s1_000103_01.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(MuseError, match=f"{bad}: unreadable image"):
        formats.manifest("market1501", market)


def test_truncated_image_is_named(market):
    good = market / "query" / "0010_c1s1_000101_01.jpg"
    write_image(good, size=(64, 32))
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(MuseError, match="unreadable image"):
        formats.manifest("market1501", market)


def test_manifest_columns_and_domain(market):
    df = formats.manifest("market1501", market)
    assert list(df.columns) == formats.MANIFEST_COLUMNS
    assert set(df.domain) == {"MA"} and len(df) == 8


def test_unknown_format():
    with pytest.raises(MuseError, match="unknown dataset format 'viper'"):
        formats.read("viper", ".")


def _person_structs(persons):
    """Person records with the official layout: {idname, nAppear, scene(1,n).{imname, idlocate, ishard}}."""
    scene_t = [("imname", "O"), ("idlocate", "O"), ("ishard", "O")]
    person_t = [("idname", "O"), ("nAppear", "O"), ("scene", "O")]
    arr = np.zeros((1, len(persons)), dtype=person_t)
    for i, (idname, scenes) in enumerate(persons):
        s = np.zeros((1, len(scenes)), dtype=scene_t)
        for j, (imname, box) in enumerate(scenes):
            s[0, j] = (imname, np.array([box], float), np.array([[0]]))
        arr[0, i] = (idname, np.array([[len(scenes)]]), s)
    return arr


def _write_release(raw, persons, train):
    """annotation/Person.mat (a struct array of every person) and annotation/test/train_test/Train.mat
    (a cell array of 1×1 structs of the training persons), as the official release."""
    (raw / "annotation" / "test" / "train_test").mkdir(parents=True, exist_ok=True)
    savemat(raw / "annotation" / "Person.mat", {"Person": _person_structs(persons)})
    cells = np.empty((len(train), 1), dtype=object)
    for k, person in enumerate(train):
        cells[k, 0] = _person_structs([person])
    savemat(raw / "annotation" / "test" / "train_test" / "Train.mat", {"Train": cells})


def test_convert_cuhksysu(tmp_path):
    raw = tmp_path / "CUHK-SYSU"
    for name, value in (("s1.jpg", 60), ("s16037.jpg", 200)):
        write_image(raw / "Image" / "SSM" / name, value, size=(100, 120))
    train = [("p00001", [("s1.jpg", (10, 20, 30, 50)), ("s16037.jpg", (100, 80, 40, 60))])]  # 2nd box clipped
    _write_release(raw, train + [("p11422", [("s16037.jpg", (0, 0, 20, 40))])], train)
    out = tmp_path / "cuhksysu"
    assert convert_cuhksysu(raw, out) == 2  # default: the training split
    assert set(by_name(formats.read_cuhksysu(out))) == {"p1_s1.jpg", "p1_s16037.jpg"}
    assert Image.open(out / "cropped_images" / "p1_s1.jpg").size == (30, 50)
    assert Image.open(out / "cropped_images" / "p1_s16037.jpg").size == (20, 20)  # clipped to 120x100
    every = tmp_path / "every"
    assert convert_cuhksysu(raw, every, split="all") == 3
    assert set(by_name(formats.read_cuhksysu(every))) == {"p1_s1.jpg", "p1_s16037.jpg", "p11422_s16037.jpg"}


def test_convert_cuhksysu_missing_annotation(tmp_path):
    (tmp_path / "Image" / "SSM").mkdir(parents=True)
    with pytest.raises(MuseError, match="Train.mat: missing"):
        convert_cuhksysu(tmp_path, tmp_path / "out")
    with pytest.raises(MuseError, match="Person.mat: missing"):
        convert_cuhksysu(tmp_path, tmp_path / "out", split="all")
    assert not (tmp_path / "out").exists()


def test_a_manifest_is_read_from_any_directory(market, tmp_path, monkeypatch):
    """Relative image paths are stored relative to the manifest and resolved against it: read from
    where it was written they are the paths given; from elsewhere they still name the images."""
    monkeypatch.chdir(market.parent)
    df = formats.manifest("market1501", market.name, check=False)
    formats.write_manifest(df, tmp_path / "deep" / "m.csv")
    stored = (tmp_path / "deep" / "m.csv").read_text().splitlines()[1].split(",")[0]
    assert not stored.startswith("/") and stored.startswith("..")
    assert list(formats.read_manifest(tmp_path / "deep" / "m.csv").path.map(lambda p: str(Path(p).resolve()))) == [
        str(Path(p).resolve()) for p in df.path
    ]
    monkeypatch.chdir(tmp_path)
    again = formats.read_manifest(Path("deep") / "m.csv")
    assert all(Path(p).is_file() for p in again.path) and len(again) == len(df)
    absolute = df.assign(path=[str(Path(p).resolve()) for p in df.path])
    formats.write_manifest(absolute, tmp_path / "abs.csv")
    assert list(formats.read_manifest(tmp_path / "abs.csv").path) == list(absolute.path)  # absolute: kept
