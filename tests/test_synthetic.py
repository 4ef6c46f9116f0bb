"""The synthetic world: deterministic, and readable by the real-format readers."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from muse.data import formats, synthetic
from muse.data.synthetic import Sizes, generate_domain
from muse.errors import MuseError

SMALL = {
    "MA": Sizes(
        train_ids=4, test_ids=5, cameras=4, cams_per_id=(2, 3), images_per_camera=(2, 3), distractors=3, junk=2
    ),
    "MS": Sizes(train_ids=5, test_ids=4, cameras=5, cams_per_id=(2, 2), images_per_camera=(2, 2), val_fraction=0.3),
    "C3": Sizes(train_ids=4, test_ids=4, cameras=2, cams_per_id=(2, 2), images_per_camera=(2, 3)),
    "CS": Sizes(train_ids=6, cameras=5, cams_per_id=(1, 1), images_per_camera=(2, 3)),
}


def digest(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    for d, sizes in SMALL.items():
        generate_domain(d, root / d, sizes, seed=3, progress=False)
    return root


@pytest.mark.parametrize("domain", list(SMALL))
def test_same_seed_same_bytes_other_seed_differs(world, tmp_path, domain):
    generate_domain(domain, tmp_path / "again", SMALL[domain], seed=3, progress=False)
    assert digest(tmp_path / "again") == digest(world / domain)
    generate_domain(domain, tmp_path / "other", SMALL[domain], seed=4, progress=False)
    assert digest(tmp_path / "other") != digest(world / domain)


@pytest.mark.parametrize("domain", list(SMALL))
def test_round_trip_through_reader(world, domain):
    fmt = synthetic.LAYOUT[domain]
    df = formats.manifest(fmt, world / domain, progress=False)
    sizes = SMALL[domain]
    train = df[df.split.isin(["train", "val"])]
    assert train.pid.nunique() == sizes.train_ids
    if domain == "CS":
        assert set(df.split) == {"train"} and set(df.camid) == {0}
        return
    test = df[df.split.isin(["query", "gallery"])]
    real = test[test.pid > 0] if domain == "MA" else test
    assert real.pid.nunique() == sizes.test_ids
    assert test.camid.between(1, sizes.cameras).all()
    # every query keeps a gallery match of the same id in another camera
    q, g = df[df.split == "query"], df[df.split == "gallery"]
    for _, row in q.iterrows():
        assert ((g.pid == row.pid) & (g.camid != row.camid)).any(), row.path


def test_market_has_distractors_junk_and_strays(world):
    names = [p.name for p in (world / "MA" / "bounding_box_test").iterdir()]
    assert sum(n.startswith("0000_") for n in names) == SMALL["MA"].distractors
    assert sum(n.startswith("-1_") for n in names) == SMALL["MA"].junk
    assert "Thumbs.db" in names
    df = formats.manifest("market1501", world / "MA", check=False)
    assert (df.pid == 0).sum() == SMALL["MA"].distractors and (df.pid == -1).sum() == 0


def test_msmt_val_list_and_cuhk03_variants(world):
    assert (world / "MS" / "list_val.txt").read_text().strip()
    det = formats.read_cuhk03np(world / "C3", "detected")
    lab = formats.read_cuhk03np(world / "C3", "labeled")
    assert [r.path.split("/")[-1] for r in det] == [r.path.split("/")[-1] for r in lab]
    a, b = np.asarray(Image.open(det[0].path)), np.asarray(Image.open(lab[0].path))
    assert a.shape == b.shape and not np.array_equal(a, b)  # same shot, different box


def test_identity_cues_repeat_within_identity():
    """The drawn cues depend only on the identity stream, not on the camera or shot."""
    rng1, rng2 = np.random.default_rng([1, 2]), np.random.default_rng([1, 2])
    assert synthetic.draw_person(rng1) == synthetic.draw_person(rng2)


def test_domains_draw_from_different_wardrobes():
    """The winter domain (MS) dresses mostly in long sleeves and jackets, the summer one (MA) not."""

    def share_long(domain):
        rng = np.random.default_rng(0)
        people = [synthetic.draw_person(rng, synthetic.STYLES[domain].wardrobe) for _ in range(400)]
        return np.mean([p.upper_type != "tshirt" for p in people])

    assert share_long("MS") > 0.8 > 0.5 > share_long("MA")


def test_bad_sizes_name_the_key():
    with pytest.raises(MuseError, match="world.domains.MA.cams_per_id"):
        Sizes.from_config("MA", {"train_ids": 2, "test_ids": 2, "cameras": 2, "cams_per_id": [1, 3]})
    with pytest.raises(MuseError, match="world.domains.MA"):
        Sizes.from_config("MA", {"train_ids": 2, "colour": "red"})
    with pytest.raises(MuseError, match="unknown synthetic domain 'XX'"):
        generate_domain("XX", "/tmp/never", SMALL["MA"])


@pytest.mark.parametrize(
    "domain, sizes, message",
    [
        ("MS", {"train_ids": 2, "distractors": 3}, "world.domains.MS: the msmt17 layout has no distractors or junk"),
        ("C3", {"train_ids": 2, "junk": 1}, "world.domains.C3: the cuhk03np layout has no distractors or junk"),
        ("MA", {"train_ids": 2, "val_fraction": 0.2}, "world.domains.MA.val_fraction: the market1501 layout has no"),
        ("CS", {"train_ids": 2, "test_ids": 2}, "world.domains.CS.test_ids: the cuhksysu layout holds training"),
    ],
)
def test_sizes_a_layout_cannot_write_are_refused(domain, sizes, message, tmp_path):
    """What a layout has no place for is refused in one line, before anything is written."""
    with pytest.raises(MuseError, match=message):
        Sizes.from_config(domain, sizes)
    with pytest.raises(MuseError, match=message):
        generate_domain(domain, tmp_path / domain, Sizes(**sizes), progress=False)
    assert not (tmp_path / domain).exists()


def test_test_identities_may_have_a_shape_of_their_own(tmp_path):
    """Dense test galleries over sparse training identities: each test identity has 3–4 images in
    each of its 2–3 cameras (one of them its query there), each training one 2 in each of 2."""
    sizes = Sizes.from_config(
        "MA",
        {
            "train_ids": 3,
            "test_ids": 6,
            "cameras": 4,
            "cams_per_id": [2, 2],
            "images_per_camera": [2, 2],
            "test_cams_per_id": [2, 3],
            "test_images_per_camera": [3, 4],
        },
    )
    generate_domain("MA", tmp_path / "MA", sizes, progress=False)
    df = formats.manifest("market1501", tmp_path / "MA", progress=False)
    train = df[df.split == "train"].groupby(["pid", "camid"]).size()
    assert (train == 2).all() and (train.groupby("pid").size() == 2).all()
    test = df[df.split != "train"]
    per_camera = test.groupby(["pid", "camid"]).split.agg(lambda s: ((s == "query").sum(), (s == "gallery").sum()))
    assert all(nq == 1 and 2 <= ng <= 3 for nq, ng in per_camera)
    assert set(per_camera.groupby("pid").size()) <= {2, 3} and test.pid.nunique() == 6
    same = Sizes(train_ids=3, test_ids=6, cameras=4, test_cams_per_id=(2, 2), test_images_per_camera=(2, 3))
    assert same.shape(test=True) == Sizes(train_ids=3, test_ids=6, cameras=4).shape(test=False)


def test_the_shipped_world_is_shaped_like_the_real_test_sets(tmp_path):
    """config.yaml's test identities: gallery images per identity within ±30 % of the real
    dataset's, one query per camera and no more queries than the real protocol has; measured on
    C3 as written."""
    import yaml

    from muse.data.synthetic import REAL_SHAPES

    domains = yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text())["world"]["domains"]
    for domain, real in REAL_SHAPES.items():
        shape = Sizes.from_config(domain, domains[domain]).per_identity(test=True)
        assert abs(shape["gallery"] / real["gallery"] - 1) <= 0.3, (domain, shape, real)
        assert shape["queries"] <= real["queries"], (domain, shape, real)
    sizes = Sizes.from_config("C3", {**domains["C3"], "train_ids": 1})
    generate_domain("C3", tmp_path / "C3", sizes, progress=False)
    df = formats.manifest("cuhk03np", tmp_path / "C3", progress=False)
    per_id = df[df.split != "train"].groupby("pid").split.agg(lambda s: ((s == "query").sum(), (s == "gallery").sum()))
    assert all(nq == 2 for nq, _ in per_id)
    assert np.mean([ng for _, ng in per_id]) == pytest.approx(sizes.per_identity(test=True)["gallery"], rel=0.15)


@pytest.mark.parametrize(
    "sizes, message",
    [
        ({"train_ids": 2, "test_ids": 2, "cameras": 3, "test_cams_per_id": [1, 2]}, "MA.test_cams_per_id: test"),
        ({"train_ids": 2, "test_ids": 2, "cameras": 3, "test_cams_per_id": [2, 4]}, "MA.test_cams_per_id: need 1"),
        ({"train_ids": 2, "test_ids": 2, "test_images_per_camera": [1, 3]}, "MA.test_images_per_camera: need >= 2"),
        ({"train_ids": 2, "test_images_per_camera": [3, 3]}, "MA: test_cams_per_id and test_images_per_camera need"),
    ],
)
def test_bad_test_shapes_name_the_key(sizes, message):
    with pytest.raises(MuseError, match=f"world.domains.{message}"):
        Sizes.from_config("MA", sizes)


def test_domain_differences_are_style_fields():
    """Times of day, snapshot cameras and twin boxes are fields: MS cameras take the times of
    its style, CS identities roam over cameras, C3 shots have a twin box."""
    from muse.data.synthetic.world import _identity_images

    times = {c.time for c in synthetic.make_cameras("MS", 12, seed=0)}
    assert times <= set(synthetic.STYLES["MS"].times) and len(times) > 1
    assert {c.time for c in synthetic.make_cameras("MA", 6, seed=0)} == {"noon"}
    sizes = Sizes(train_ids=1, cameras=6, cams_per_id=(1, 1), images_per_camera=(6, 6))
    cs = _identity_images("CS", 1, 1, sizes, synthetic.make_cameras("CS", 6, 0), 0)
    ma = _identity_images("MA", 1, 1, sizes, synthetic.make_cameras("MA", 6, 0), 0)
    assert len({c.cam for c in cs}) > 1 and len({c.cam for c in ma}) == 1
    c3 = _identity_images("C3", 1, 1, Sizes(train_ids=1), synthetic.make_cameras("C3", 2, 0), 0)
    assert all(c.twin is not None and c.twin.tobytes() != c.image.tobytes() for c in c3)
    assert all(c.twin is None for c in ma)


def test_the_largest_gallery_bounds_the_generated_one(tmp_path):
    """Sizes.largest_gallery (the dry run's bound on neighbour counts) is at least the gallery the
    world writes."""
    from muse.data.formats import manifest
    from muse.data.synthetic.world import Sizes, generate_domain

    sizes = Sizes(train_ids=2, test_ids=3, cameras=3, cams_per_id=(2, 3), images_per_camera=(2, 3), distractors=4)
    generate_domain("MA", tmp_path / "MA", sizes, seed=0)
    gallery = (manifest("market1501", tmp_path / "MA", check=False).split == "gallery").sum()
    assert 0 < gallery <= sizes.largest_gallery() == 3 * 3 * 2 + 4
