"""Writing a synthetic domain: identities, their images under the domain's cameras, and the
domain's dataset layout (:func:`muse.data.formats.write`).

Everything is drawn from ``numpy.random.default_rng`` streams keyed by (seed, domain, role,
index), so a seed fixes every byte of every file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from tqdm import tqdm

from muse.data import formats
from muse.data.formats import Capture
from muse.data.synthetic.people import draw_person
from muse.data.synthetic.rendering import Camera, draw_camera, draw_shot, render
from muse.data.synthetic.styles import STREAM, STYLES, Style
from muse.errors import MuseError
from muse.io import atomic_path

# The real datasets' shapes the synthetic domains imitate (from their published sizes): images of a
# test identity in the gallery, its queries (one per camera it is seen in), images of a training
# identity. Market-1501: 13,115 gallery images of 750 test identities (besides 2,798 distractors
# and 3,819 junk), 3,368 queries, 12,936 training images of 751; MSMT17: 82,161 / 3,060, 11,659,
# 32,621 / 1,041; CUHK03-NP (detected): 5,332 / 700, 1,400, 7,365 / 767.
REAL_SHAPES = {
    "MA": {"gallery": 17.5, "queries": 4.5, "train": 17.2},
    "MS": {"gallery": 26.8, "queries": 3.8, "train": 31.3},
    "C3": {"gallery": 7.6, "queries": 2.0, "train": 9.6},
}

_TRAIN, _TEST, _EXTRAS = 1, 2, 3  # roles in the random streams' keys
_NAMING = {"msmt17": 4, "cuhksysu": 5}  # the role of the layouts whose writers draw names or scenes


@dataclass(frozen=True)
class Sizes:
    """How many identities, cameras and images a domain has (config ``world.domains.<D>``).

    An identity is seen by ``cams_per_id`` cameras (a range) and ``images_per_camera`` images in
    each; a test identity's first image in a camera is its query there, the others are gallery
    images. ``test_cams_per_id`` and ``test_images_per_camera`` give the test identities a shape
    of their own (default: the training one), e.g. the real test galleries' 7.6–27 images per
    identity."""

    train_ids: int
    test_ids: int = 0
    cameras: int = 2
    cams_per_id: tuple[int, int] = (2, 2)
    images_per_camera: tuple[int, int] = (2, 3)
    test_cams_per_id: tuple[int, int] | None = None
    test_images_per_camera: tuple[int, int] | None = None
    distractors: int = 0
    junk: int = 0
    val_fraction: float = 0.0

    def largest_gallery(self) -> int:
        """An upper bound on the test gallery: every test identity at its most cameras and images
        (one per camera is a query), plus the distractors."""
        (_, cams), (_, images) = self.shape(test=True)
        return self.test_ids * cams * (images - 1) + self.distractors

    def shape(self, test: bool) -> tuple[tuple[int, int], tuple[int, int]]:
        """(cameras per identity, images per camera) of a test or a training identity."""
        if not test:
            return self.cams_per_id, self.images_per_camera
        return self.test_cams_per_id or self.cams_per_id, self.test_images_per_camera or self.images_per_camera

    @classmethod
    def from_config(cls, domain: str, cfg: dict) -> Sizes:
        try:
            sizes = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})
        except TypeError as e:
            raise MuseError(f"world.domains.{domain}: {e}") from None
        sizes.check(domain)
        return sizes

    def per_identity(self, test: bool) -> dict[str, float]:
        """Expected images of an identity, with k cameras and n_c images in camera c drawn
        uniformly from their ranges: a test identity has E[k] queries and E[k]·(E[n] − 1)
        gallery images, a training identity E[k]·E[n] images."""
        (k_lo, k_hi), (n_lo, n_hi) = self.shape(test)
        k, n = (k_lo + k_hi) / 2, (n_lo + n_hi) / 2
        return {"queries": k, "gallery": k * (n - 1)} if test else {"train": k * n}

    def check(self, domain: str) -> None:
        """Refuse, naming the key, sizes that the domain's style or layout cannot write."""
        layout = _style(domain).layout
        key = f"world.domains.{domain}"
        for name in ("cams_per_id", "images_per_camera", "test_cams_per_id", "test_images_per_camera"):
            lo, hi = getattr(self, name) or (1, 1)
            if not 1 <= lo <= hi or (name.endswith("cams_per_id") and hi > self.cameras):
                bound = f" <= cameras ({self.cameras})" if name.endswith("cams_per_id") else ""
                raise MuseError(f"{key}.{name}: need 1 <= lo <= hi{bound}")
        spec = formats.layout(layout)
        if not spec.tested and self.test_ids:
            raise MuseError(f"{key}.test_ids: the {layout} layout holds training images only")
        if (self.test_cams_per_id or self.test_images_per_camera) and not self.test_ids:
            raise MuseError(f"{key}: test_cams_per_id and test_images_per_camera need test_ids")
        (cams, images), tested = self.shape(test=True), self.test_ids and spec.tested
        if tested and cams[0] < 2:
            name = "test_cams_per_id" if self.test_cams_per_id else "cams_per_id"
            raise MuseError(f"{key}.{name}: test identities need >= 2 cameras")
        if tested and images[0] < 2:
            name = "test_images_per_camera" if self.test_images_per_camera else "images_per_camera"
            raise MuseError(f"{key}.{name}: need >= 2 so each query keeps a match")
        if (self.distractors or self.junk) and not spec.gallery_extras:
            raise MuseError(f"{key}: the {layout} layout has no distractors or junk")
        if self.val_fraction and not spec.val_list:
            raise MuseError(f"{key}.val_fraction: the {layout} layout has no validation list")


def _style(domain: str) -> Style:
    if domain not in STYLES:
        raise MuseError(f"unknown synthetic domain '{domain}': expected one of {', '.join(STYLES)}")
    return STYLES[domain]


def make_cameras(domain: str, n: int, seed: int) -> list[Camera]:
    """The ``n`` cameras of a domain, numbered from 1, each at one of the style's times of day."""
    style, cams = _style(domain), []
    for c in range(1, n + 1):
        rng = np.random.default_rng([seed, STREAM[domain], 0, c])
        time = style.times[rng.integers(len(style.times))] if len(style.times) > 1 else style.times[0]
        cams.append(draw_camera(style, c, rng, time))
    return cams


def _identity_images(domain, pid, role, sizes, cams, seed) -> list[Capture]:
    """All images of one identity: a few cameras, a few shots per camera, the first shot of a
    camera holding several marked as a query candidate."""
    style = STYLES[domain]
    rng = np.random.default_rng([seed, STREAM[domain], role, pid])
    person = draw_person(rng, style.wardrobe)
    cams_per_id, images_per_camera = sizes.shape(test=role == _TEST)
    n_cams = int(rng.integers(cams_per_id[0], cams_per_id[1] + 1))
    chosen = sorted(rng.choice(len(cams), size=n_cams, replace=False))
    out = []
    for ci in chosen:
        n = int(rng.integers(images_per_camera[0], images_per_camera[1] + 1))
        for k in range(n):
            cam = cams[int(rng.integers(len(cams)))] if style.snapshots else cams[ci]
            shot = draw_shot(style, cam, rng)
            image, twin = render(person, style, cam, shot), None
            if style.twin_boxes:  # the tight box is the twin; the written one is boxed loosely
                loose = replace(
                    shot,
                    scale=shot.scale * rng.uniform(0.8, 0.95),
                    dx=shot.dx + rng.uniform(-0.1, 0.1),
                    dy=shot.dy + rng.uniform(-0.05, 0.08),
                )
                image, twin = render(person, style, cam, loose), image
            out.append(Capture(pid, cam.index, image, style.quality, k == 0 and n >= 2, twin, cam.time))
    return out


def _extras(domain, sizes, cams, seed, bar) -> list[Capture]:
    """Gallery images of no test identity: distractors (pid 0, people outside the test
    identities) and junk (pid −1, bad detections: background or fragments)."""
    style = STYLES[domain]
    rng = np.random.default_rng([seed, STREAM[domain], _EXTRAS])
    out = []
    for _ in range(sizes.distractors):
        cam = cams[int(rng.integers(len(cams)))]
        image = render(draw_person(rng, style.wardrobe), style, cam, draw_shot(style, cam, rng))
        out.append(Capture(0, cam.index, image, style.quality))
        bar.update()
    for _ in range(sizes.junk):
        cam = cams[int(rng.integers(len(cams)))]
        shot = draw_shot(style, cam, rng)
        person = draw_person(rng, style.wardrobe) if rng.random() < 0.5 else None
        image = render(person, style, cam, replace(shot, scale=shot.scale * 2.2, dy=0.4))
        out.append(Capture(-1, cam.index, image, style.quality))
        bar.update()
    return out


def generate_domain(domain: str, out, sizes: Sizes, seed: int = 0, progress: bool = True) -> int:
    """Write one synthetic domain in its real layout at ``out`` (atomically); returns the image
    count. Train identities are numbered 1.., test identities after them; the gallery ends with
    the distractors and junk."""
    style = _style(domain)
    sizes.check(domain)
    cams = make_cameras(domain, sizes.cameras, seed)
    bar = tqdm(
        total=sizes.train_ids + sizes.test_ids + sizes.distractors + sizes.junk,
        desc=f"world {domain}",
        unit="id",
        disable=not progress,
    )
    train, test = [], []
    for i in range(sizes.train_ids + sizes.test_ids):
        role = _TRAIN if i < sizes.train_ids else _TEST
        (train if role == _TRAIN else test).extend(_identity_images(domain, i + 1, role, sizes, cams, seed))
        bar.update()
    test += _extras(domain, sizes, cams, seed, bar)
    rng = np.random.default_rng([seed, STREAM[domain], _NAMING.get(style.layout, 0)])
    with atomic_path(out) as root:
        root.mkdir(parents=True)
        formats.write(style.layout, root, train, test, rng, sizes.val_fraction)
    bar.close()
    return len(train) + len(test)
