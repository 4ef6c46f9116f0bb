"""The synthetic person world: the embedded default data, in the real datasets' formats.

A pedestrian's identity lives in the cues that the MLLM prompt (Table 1) names: body shape
(height, build), hair (style, colour), skin tone, clothing (upper type, colour and pattern;
lower type and colour; shoes), carried objects (backpack, handbag, shoulder bag) and
accessories (hat, glasses, scarf). Each image renders one identity under nuisances that belong
to the domain and its cameras: background scene, illumination, a per-camera colour cast,
blur, sensor noise, scale and position, viewpoint (front/back/side), walking pose and partial
occlusion. Domains also differ in their clothing priors (a summer campus, a winter campus, an
indoor campus, street snapshots), as the real datasets do.

Four domains, each written in exactly one real layout (:mod:`muse.data.formats`):

====  ==========  ===============================================================
MA    market1501  outdoor summer campus, 6 cameras, distractors (pid 0), junk (−1)
MS    msmt17      V2 folders and list files, winter, indoor + outdoor cameras,
                  three times of day
C3    cuhk03np    indoor, 2 cameras, ``labeled`` (tight) and ``detected`` (loose) boxes
CS    cuhksysu    street snapshots, every image its own scene, frequent occlusion
====  ==========  ===============================================================

Everything is drawn from ``numpy.random.default_rng`` streams keyed by (seed, domain, role,
index), so a seed fixes every byte of every file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from muse.errors import MuseError
from muse.io import atomic_path

# ---------------------------------------------------------------------------------------------
# Identities

COLOURS = {
    "black": (25, 25, 28),
    "white": (235, 235, 230),
    "grey": (128, 128, 128),
    "navy": (30, 40, 100),
    "blue": (40, 90, 200),
    "sky": (120, 180, 235),
    "red": (200, 35, 40),
    "maroon": (110, 25, 35),
    "pink": (235, 140, 175),
    "orange": (240, 140, 30),
    "yellow": (235, 215, 50),
    "green": (40, 150, 60),
    "olive": (110, 115, 45),
    "brown": (110, 70, 40),
    "beige": (210, 190, 150),
    "purple": (120, 60, 160),
}
DARK = ("black", "grey", "navy", "maroon", "brown", "olive")
SKIN = ((250, 220, 195), (235, 195, 160), (210, 165, 125), (175, 125, 85), (130, 90, 60), (90, 60, 40))
HAIR = {
    "black": (20, 18, 18),
    "brown": (90, 55, 30),
    "blond": (215, 185, 110),
    "grey": (160, 160, 160),
    "red": (150, 60, 30),
}

HAIR_STYLES = ("short", "long", "ponytail", "bald")
UPPER_TYPES = ("tshirt", "longsleeve", "jacket")
PATTERNS = ("plain", "hstripes", "vstripes", "checks", "logo")
LOWER_TYPES = ("trousers", "shorts", "skirt")
CARRY = ("none", "backpack", "handbag", "shoulderbag")


@dataclass(frozen=True)
class Person:
    """The identity cues of one pedestrian (what stays the same across cameras)."""

    height: float
    build: float
    skin: tuple
    hair_style: str
    hair: tuple
    upper_type: str
    upper: tuple
    inner: tuple
    pattern: str
    pattern_colour: tuple
    lower_type: str
    lower: tuple
    shoes: tuple
    carry: str
    carry_colour: tuple
    hat: tuple | None
    glasses: bool
    scarf: tuple | None


@dataclass(frozen=True)
class Wardrobe:
    """A domain's clothing prior: probabilities over types, and how often colours are dark."""

    upper: tuple = (0.5, 0.3, 0.2)
    lower: tuple = (0.6, 0.25, 0.15)
    dark: float = 0.35
    hat: float = 0.12
    scarf: float = 0.05


def _pick(rng, options, p=None):
    return options[rng.choice(len(options), p=p)]


def _colour(rng, dark: float):
    names = DARK if rng.random() < dark else tuple(COLOURS)
    return COLOURS[_pick(rng, names)]


def draw_person(rng: np.random.Generator, wardrobe: Wardrobe = Wardrobe()) -> Person:
    """Draw one identity's cues from a domain's wardrobe."""
    upper = _pick(rng, UPPER_TYPES, wardrobe.upper)
    lower = _pick(rng, LOWER_TYPES, wardrobe.lower)
    return Person(
        height=float(rng.uniform(0.86, 1.0)),
        build=float(rng.uniform(0.8, 1.25)),
        skin=SKIN[rng.integers(len(SKIN))],
        hair_style=_pick(rng, HAIR_STYLES, (0.45, 0.3, 0.15, 0.1)),
        hair=HAIR[_pick(rng, tuple(HAIR))],
        upper_type=upper,
        upper=_colour(rng, wardrobe.dark),
        inner=_colour(rng, 0.2),
        pattern=_pick(rng, PATTERNS, (0.4, 0.15, 0.15, 0.15, 0.15)),
        pattern_colour=_colour(rng, 0.2),
        lower_type=lower,
        lower=_colour(rng, wardrobe.dark + 0.2),
        shoes=_colour(rng, 0.6),
        carry=_pick(rng, CARRY, (0.4, 0.25, 0.2, 0.15)),
        carry_colour=_colour(rng, 0.4),
        hat=_colour(rng, 0.3) if rng.random() < wardrobe.hat else None,
        glasses=bool(rng.random() < 0.2),
        scarf=_colour(rng, 0.2) if rng.random() < wardrobe.scarf else None,
    )


# ---------------------------------------------------------------------------------------------
# Domains and cameras


@dataclass(frozen=True)
class Style:
    """The nuisances of a domain: image geometry, scenes, optics and clothing prior."""

    size: tuple[int, int]  # (H, W) of the written images
    scene: str  # background generator, see _scene()
    brightness: tuple[float, float]  # per-camera gain range
    cast: float  # per-camera colour-cast magnitude (per channel)
    saturation: float  # domain colour saturation factor
    blur: tuple[float, float]  # Gaussian blur radius range (pixels)
    noise: float  # sensor noise std (0..255 scale)
    scale: tuple[float, float]  # person height as a fraction of the image height
    occlusion: float  # probability of a partial occluder
    views: tuple[float, float, float]  # P(front), P(back), P(side)
    wardrobe: Wardrobe = field(default_factory=Wardrobe)
    quality: int = 90  # JPEG quality


STYLES = {
    "MA": Style(
        size=(128, 64),
        scene="outdoor",
        brightness=(0.95, 1.25),
        cast=0.15,
        saturation=1.1,
        blur=(0.0, 0.6),
        noise=4.0,
        scale=(0.82, 0.95),
        occlusion=0.1,
        views=(0.4, 0.4, 0.2),
        wardrobe=Wardrobe((0.65, 0.25, 0.1), (0.45, 0.35, 0.2), 0.25, 0.1, 0.0),
    ),
    "MS": Style(
        size=(144, 64),
        scene="mixed",
        brightness=(0.75, 1.05),
        cast=0.1,
        saturation=0.85,
        blur=(0.2, 0.8),
        noise=6.0,
        scale=(0.75, 0.95),
        occlusion=0.15,
        views=(0.35, 0.35, 0.3),
        wardrobe=Wardrobe((0.1, 0.45, 0.45), (0.85, 0.05, 0.1), 0.45, 0.3, 0.3),
    ),
    "C3": Style(
        size=(160, 64),
        scene="indoor",
        brightness=(0.85, 1.15),
        cast=0.1,
        saturation=0.9,
        blur=(0.3, 0.9),
        noise=5.0,
        scale=(0.88, 1.0),
        occlusion=0.05,
        views=(0.5, 0.5, 0.0),
        wardrobe=Wardrobe((0.45, 0.4, 0.15), (0.65, 0.2, 0.15), 0.4, 0.05, 0.05),
        quality=95,
    ),
    "CS": Style(
        size=(128, 56),
        scene="street",
        brightness=(0.75, 1.2),
        cast=0.15,
        saturation=1.0,
        blur=(0.0, 1.0),
        noise=5.0,
        scale=(0.65, 0.95),
        occlusion=0.35,
        views=(0.4, 0.3, 0.3),
        wardrobe=Wardrobe((0.4, 0.35, 0.25), (0.6, 0.2, 0.2), 0.4, 0.15, 0.1),
    ),
}
LAYOUT = {"MA": "market1501", "MS": "msmt17", "C3": "cuhk03np", "CS": "cuhksysu"}
_DOMAIN_INDEX = {d: i for i, d in enumerate(LAYOUT)}
_TIMES = ("morning", "noon", "afternoon")


@dataclass(frozen=True)
class Camera:
    index: int
    gain: float
    cast: tuple[float, float, float]
    blur: float
    scene: np.ndarray = field(repr=False)  # a wide background from which each shot is cropped
    time: str = "noon"


def _scene(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A background larger than one shot (h×w): crops of it look like the same place."""
    H, W = int(h * 1.4), w * 3
    y = np.linspace(0, 1, H)[:, None, None]
    indoor = kind == "indoor" or (kind == "mixed" and rng.random() < 0.5)
    if kind == "street":
        img = np.empty((H, W, 3))
        img[:] = rng.uniform(60, 200, 3)
        for _ in range(10):
            y0, x0 = rng.integers(0, H), rng.integers(0, W)
            img[y0 : y0 + rng.integers(10, H // 2), x0 : x0 + rng.integers(8, W // 2)] = rng.uniform(20, 240, 3)
    elif indoor:
        wall, floor = rng.uniform(120, 220, 3), rng.uniform(60, 150, 3)
        img = np.where(y < rng.uniform(0.55, 0.75), wall, floor) * np.ones((H, W, 3))
        period = int(rng.integers(8, 20))
        img[:, ::period] *= 0.7  # panels / tiles
        img[:: period * 2] *= 0.85 if kind == "mixed" else 1.0
    else:  # outdoor: sky, greenery, pavement
        sky, ground = rng.uniform([150, 170, 190], [210, 225, 250]), rng.uniform(90, 170, 3)
        img = (sky * (1 - y) + ground * y) * np.ones((H, W, 3))
        for _ in range(6):
            cy, cx, r = rng.uniform(0.2, 0.6) * H, rng.uniform(0, W), rng.uniform(6, 18)
            yy, xx = np.ogrid[:H, :W]
            img[(yy - cy) ** 2 + ((xx - cx) * 1.5) ** 2 < r * r] = rng.uniform([20, 80, 20], [80, 160, 70])
    return np.clip(img, 0, 255).astype(np.uint8)


def make_cameras(domain: str, n: int, seed: int) -> list[Camera]:
    """The ``n`` cameras of a domain, numbered from 1."""
    cams = []
    for c in range(1, n + 1):
        rng = np.random.default_rng([seed, _DOMAIN_INDEX[domain], 0, c])
        time = _TIMES[rng.integers(len(_TIMES))] if domain == "MS" else "noon"
        cams.append(draw_camera(STYLES[domain], c, rng, time))
    return cams


def draw_camera(style: Style, index: int, rng: np.random.Generator, time: str = "noon") -> Camera:
    """One camera of a style: gain (dimmer in the morning and afternoon), colour cast, blur, scene."""
    gain = rng.uniform(*style.brightness) * {"morning": 0.8, "noon": 1.0, "afternoon": 0.9}[time]
    return Camera(
        index=index,
        gain=float(gain),
        cast=tuple(float(v) for v in rng.uniform(-style.cast, style.cast, 3)),
        blur=float(rng.uniform(*style.blur)),
        scene=_scene(style.scene, *style.size, rng),
        time=time,
    )


# ---------------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True)
class Shot:
    """The per-image nuisances: where the person stands, how, and what hides part of them."""

    view: str  # front | back | left | right
    phase: float  # walking phase, −1..1
    scale: float  # person height / image height
    dx: float  # horizontal offset, fraction of the width
    dy: float  # vertical offset, fraction of the height
    crop: tuple[int, int]  # top-left corner of the background crop
    occluder: tuple | None  # (x0, y0, x1, y1) fractions and an RGB colour, or None
    jitter: tuple  # small RGB shift of the clothes under this camera
    noise_seed: int


def draw_shot(style: Style, camera: Camera, rng: np.random.Generator) -> Shot:
    h, w = style.size
    view = _pick(rng, ("front", "back", "side"), style.views)
    if view == "side":
        view = "left" if rng.random() < 0.5 else "right"
    occluder = None
    if rng.random() < style.occlusion:
        side = rng.integers(3)
        y0 = rng.uniform(0.55, 0.8) if side == 0 else rng.uniform(0.1, 0.5)
        x0, x1 = (
            (0.0, 1.0) if side == 0 else (0.0, rng.uniform(0.25, 0.45)) if side == 1 else (rng.uniform(0.55, 0.75), 1.0)
        )
        occluder = (x0, y0, x1, 1.0 if side == 0 else y0 + rng.uniform(0.3, 0.5), tuple(rng.integers(20, 230, 3)))
    sh, sw = camera.scene.shape[:2]
    return Shot(
        view=view,
        phase=float(rng.uniform(-1, 1)),
        scale=float(rng.uniform(*style.scale)),
        dx=float(rng.uniform(-0.08, 0.08)),
        dy=float(rng.uniform(-0.03, 0.03)),
        crop=(int(rng.integers(0, sh - h + 1)), int(rng.integers(0, sw - w + 1))),
        occluder=occluder,
        jitter=tuple(int(v) for v in rng.integers(-10, 11, 3)),
        noise_seed=int(rng.integers(2**31)),
    )


def _shift(c, jitter):
    return tuple(int(min(255, max(0, a + b))) for a, b in zip(c, jitter))


def _person(draw: ImageDraw.ImageDraw, p: Person, s: Shot, h: int, w: int) -> None:
    """Draw the pedestrian; geometry in units of the person's height u."""
    u = s.scale * p.height * h
    top = (h - s.scale * h) / 2 + (1 - p.height) * s.scale * h + s.dy * h
    cx = w / 2 + s.dx * w
    side = s.view in ("left", "right")
    facing = 1 if s.view == "right" else -1
    J = lambda c: _shift(c, s.jitter)  # noqa: E731 - the camera's colour response on cloth
    r = 0.07 * u
    ys, yh, yk, yf = top + 0.16 * u, top + 0.52 * u, top + 0.75 * u, top + 0.96 * u
    tw = (0.085 if side else 0.13) * u * p.build
    aw = 0.05 * u * p.build
    stride = 0.06 * u * s.phase

    if p.carry == "backpack" and s.view in ("front", "left", "right"):
        if side:  # behind the torso, on the side facing away
            bx = cx - facing * tw
            draw.rectangle([bx - 0.07 * u, ys + 0.02 * u, bx + 0.07 * u, yh - 0.06 * u], fill=J(p.carry_colour))

    # legs and shoes
    for leg in (-1, 1):
        lx = cx + (0 if side else leg * 0.055 * u) + leg * stride
        lw = 0.04 * u * p.build
        hem = {"trousers": yf, "shorts": yk - 0.06 * u, "skirt": top + 0.62 * u}[p.lower_type]
        draw.polygon(
            [(cx + leg * 0.02 * u - lw, yh), (cx + leg * 0.02 * u + lw, yh), (lx + lw, yf), (lx - lw, yf)], fill=p.skin
        )
        draw.polygon(
            [
                (cx + leg * 0.02 * u - lw, yh),
                (cx + leg * 0.02 * u + lw, yh),
                (lx + lw * (1 + (hem - yh) / (yf - yh)) / 2, hem),
                (lx - lw * (1 + (hem - yh) / (yf - yh)) / 2, hem),
            ],
            fill=J(p.lower),
        )
        draw.rectangle(
            [lx - lw - (0.02 * u if side else 0), yf, lx + lw + (0.02 * u if side else 0), top + u], fill=J(p.shoes)
        )
    if p.lower_type == "skirt":
        draw.polygon(
            [
                (cx - tw, yh - 0.02 * u),
                (cx + tw, yh - 0.02 * u),
                (cx + tw * 1.5, top + 0.68 * u),
                (cx - tw * 1.5, top + 0.68 * u),
            ],
            fill=J(p.lower),
        )

    # arms (behind the torso when seen from the side)
    sleeve = {"tshirt": ys + 0.12 * u, "longsleeve": top + 0.48 * u, "jacket": top + 0.48 * u}[p.upper_type]
    arm_x = (cx - facing * 0.02 * u,) if side else (cx - tw - aw / 2, cx + tw + aw / 2)
    for i, ax in enumerate(arm_x):
        swing = (s.phase if i == 0 else -s.phase) * 0.05 * u
        draw.polygon(
            [
                (ax - aw / 2, ys),
                (ax + aw / 2, ys),
                (ax + aw / 2 + swing, top + 0.5 * u),
                (ax - aw / 2 + swing, top + 0.5 * u),
            ],
            fill=p.skin,
        )
        frac = (sleeve - ys) / (0.5 * u - 0.16 * u)
        draw.polygon(
            [
                (ax - aw / 2, ys),
                (ax + aw / 2, ys),
                (ax + aw / 2 + swing * frac, sleeve),
                (ax - aw / 2 + swing * frac, sleeve),
            ],
            fill=J(p.upper),
        )

    # torso with pattern
    box = [cx - tw, ys, cx + tw, yh]
    draw.rectangle(box, fill=J(p.upper))
    if p.upper_type == "jacket" and s.view == "front":
        draw.rectangle([cx - tw * 0.35, ys, cx + tw * 0.35, yh], fill=J(p.inner))
    step = max(2.0, 0.045 * u)
    pc = J(p.pattern_colour)
    if p.pattern in ("hstripes", "checks"):
        for y in np.arange(ys + step / 2, yh, step * (2 if p.pattern == "checks" else 1.6)):
            draw.line([(cx - tw, y), (cx + tw, y)], fill=pc, width=max(1, int(step / 2)))
    if p.pattern in ("vstripes", "checks"):
        for x in np.arange(cx - tw + step / 2, cx + tw, step * 2):
            draw.line([(x, ys), (x, yh)], fill=pc, width=max(1, int(step / 2)))
    if p.pattern == "logo" and s.view == "front":
        draw.ellipse([cx - 0.05 * u, ys + 0.08 * u, cx + 0.05 * u, ys + 0.18 * u], fill=pc)

    # carried objects
    cc = J(p.carry_colour)
    if p.carry == "backpack":
        if s.view == "back":
            draw.rectangle([cx - tw * 0.8, ys + 0.03 * u, cx + tw * 0.8, yh - 0.05 * u], fill=cc)
        elif s.view == "front":
            for sx in (-1, 1):
                draw.line(
                    [(cx + sx * tw * 0.6, ys), (cx + sx * tw * 0.6, ys + 0.2 * u)], fill=cc, width=max(1, int(0.02 * u))
                )
    elif p.carry == "handbag":
        hx = arm_x[-1] + (s.phase * 0.05 * u if side else 0)
        draw.rectangle([hx - 0.05 * u, top + 0.47 * u, hx + 0.05 * u, top + 0.58 * u], fill=cc)
    elif p.carry == "shoulderbag":
        draw.line([(cx - tw, ys), (cx + tw, yh - 0.05 * u)], fill=cc, width=max(1, int(0.02 * u)))
        draw.rectangle([cx + tw - 0.04 * u, yh - 0.1 * u, cx + tw + 0.07 * u, yh + 0.01 * u], fill=cc)

    # head, hair, accessories
    hx = cx + (facing * 0.01 * u if side else 0)
    head = [hx - r, top, hx + r, top + 2 * r]
    draw.rectangle([hx - 0.3 * r, top + 1.8 * r, hx + 0.3 * r, ys + 0.01 * u], fill=p.skin)  # neck
    if p.hair_style == "long":
        draw.rectangle([hx - r * 1.05, top + r * 0.6, hx + r * 1.05, ys + 0.1 * u], fill=p.hair)
    draw.ellipse(head, fill=p.hair if s.view == "back" and p.hair_style != "bald" else p.skin)
    if p.hair_style != "bald":
        draw.chord([hx - r * 1.05, top - r * 0.1, hx + r * 1.05, top + r * 1.6], 180, 360, fill=p.hair)
    if p.hair_style == "ponytail" and s.view != "front":
        px = hx - facing * r if side else hx
        draw.ellipse([px - 0.4 * r, top + r, px + 0.4 * r, top + 2.6 * r], fill=p.hair)
    if p.glasses and s.view != "back":
        gx0, gx1 = (hx - 0.8 * r, hx + 0.8 * r) if not side else (hx, hx + facing * 0.9 * r)
        draw.line(
            [(min(gx0, gx1), top + r * 0.9), (max(gx0, gx1), top + r * 0.9)],
            fill=(10, 10, 10),
            width=max(1, int(0.35 * r)),
        )
    if p.scarf is not None:
        draw.rectangle([cx - tw * 0.7, ys - 0.02 * u, cx + tw * 0.7, ys + 0.05 * u], fill=J(p.scarf))
    if p.hat is not None:
        draw.chord([hx - r * 1.1, top - r * 0.4, hx + r * 1.1, top + r * 1.3], 180, 360, fill=J(p.hat))
        draw.rectangle([hx - r * 1.3, top + r * 0.4, hx + r * 1.3, top + r * 0.55], fill=J(p.hat))


def render(
    person: Person | None, style: Style, camera: Camera, shot: Shot, size: tuple[int, int] | None = None
) -> Image.Image:
    """One image: background crop, the person (None: background only), occluder, camera optics."""
    h, w = size or style.size
    y0, x0 = shot.crop
    bg = camera.scene[y0 : y0 + style.size[0], x0 : x0 + style.size[1]]
    img = Image.fromarray(bg).resize((w, h), Image.BILINEAR) if (h, w) != style.size else Image.fromarray(bg)
    draw = ImageDraw.Draw(img)
    if person is not None:
        _person(draw, person, shot, h, w)
    if shot.occluder is not None:
        x0f, y0f, x1f, y1f, colour = shot.occluder
        draw.rectangle([x0f * w, y0f * h, x1f * w, y1f * h], fill=tuple(int(c) for c in colour))
    if camera.blur > 0.05:
        img = img.filter(ImageFilter.GaussianBlur(camera.blur))
    a = np.asarray(img, dtype=np.float32)
    grey = a.mean(axis=2, keepdims=True)
    a = grey + (a - grey) * style.saturation
    a = a * camera.gain * (1 + np.asarray(camera.cast, dtype=np.float32))
    a += np.random.default_rng(shot.noise_seed).normal(0, style.noise, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8))


# ---------------------------------------------------------------------------------------------
# Writing a domain in its layout


@dataclass(frozen=True)
class Sizes:
    """How many identities, cameras and images a domain has (config ``world.domains.<D>``)."""

    train_ids: int
    test_ids: int = 0
    cameras: int = 2
    cams_per_id: tuple[int, int] = (2, 2)
    images_per_camera: tuple[int, int] = (2, 3)
    distractors: int = 0
    junk: int = 0
    val_fraction: float = 0.0

    @classmethod
    def from_config(cls, domain: str, cfg: dict) -> Sizes:
        try:
            sizes = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})
        except TypeError as e:
            raise MuseError(f"world.domains.{domain}: {e}") from None
        lo, hi = sizes.cams_per_id
        if not 1 <= lo <= hi <= sizes.cameras:
            raise MuseError(f"world.domains.{domain}.cams_per_id: need 1 <= lo <= hi <= cameras ({sizes.cameras})")
        if domain != "CS" and sizes.test_ids and lo < 2:
            raise MuseError(f"world.domains.{domain}.cams_per_id: test identities need >= 2 cameras")
        if domain != "CS" and sizes.test_ids and sizes.images_per_camera[0] < 2:
            raise MuseError(f"world.domains.{domain}.images_per_camera: need >= 2 so each query keeps a match")
        return sizes


@dataclass
class _Image:
    pid: int
    cam: int
    image: Image.Image
    query: bool = False
    extra: Image.Image | None = None  # CUHK03 'labeled' twin of a 'detected' box


def _identity_images(domain, pid, role, sizes, cams, seed, person=None) -> list[_Image]:
    """All images of one identity: a few cameras, a few shots per camera, the first shot of a
    camera holding several marked as a query candidate."""
    style = STYLES[domain]
    rng = np.random.default_rng([seed, _DOMAIN_INDEX[domain], role, pid])
    person = person or draw_person(rng, style.wardrobe)
    n_cams = int(rng.integers(sizes.cams_per_id[0], sizes.cams_per_id[1] + 1))
    chosen = sorted(rng.choice(len(cams), size=n_cams, replace=False))
    out = []
    for ci in chosen:
        n = int(rng.integers(sizes.images_per_camera[0], sizes.images_per_camera[1] + 1))
        for k in range(n):
            cam = cams[ci] if domain != "CS" else cams[int(rng.integers(len(cams)))]
            shot = draw_shot(style, cam, rng)
            img = _Image(pid, cam.index, render(person, style, cam, shot), query=(k == 0 and n >= 2))
            if domain == "C3":  # labeled: tight box; detected: the same shot, loosely boxed
                img.extra = img.image
                loose = replace(
                    shot,
                    scale=shot.scale * rng.uniform(0.8, 0.95),
                    dx=shot.dx + rng.uniform(-0.1, 0.1),
                    dy=shot.dy + rng.uniform(-0.05, 0.08),
                )
                img.image = render(person, style, cam, loose)
            out.append(img)
    return out


def _write(img: Image.Image, path: Path, quality: int) -> None:
    if path.suffix == ".png":
        img.save(path, optimize=False)
    else:
        img.save(path, quality=quality)


def generate_domain(domain: str, out, sizes: Sizes, seed: int = 0, progress: bool = True) -> int:
    """Write one synthetic domain in its real layout at ``out`` (atomically); returns the image count."""
    if domain not in LAYOUT:
        raise MuseError(f"unknown synthetic domain '{domain}': expected one of {', '.join(LAYOUT)}")
    style = STYLES[domain]
    cams = make_cameras(domain, sizes.cameras, seed)
    n_ids = sizes.train_ids + sizes.test_ids
    bar = tqdm(total=n_ids + sizes.distractors + sizes.junk, desc=f"world {domain}", unit="id", disable=not progress)
    with atomic_path(out) as root:
        root.mkdir(parents=True)
        writer = {"MA": _write_market, "MS": _write_msmt, "C3": _write_cuhk03, "CS": _write_cuhksysu}[domain]
        count = writer(root, domain, style, sizes, cams, seed, bar)
    bar.close()
    return count


def _splits(domain, sizes, cams, seed, bar):
    """(train images, test images) with train pids 1.. and test pids after them."""
    train, test = [], []
    for i in range(sizes.train_ids + sizes.test_ids):
        role = 1 if i < sizes.train_ids else 2
        imgs = _identity_images(domain, i + 1, role, sizes, cams, seed)
        (train if role == 1 else test).extend(imgs)
        bar.update()
    return train, test


def _write_market(root, domain, style, sizes, cams, seed, bar):
    dirs = {k: root / k for k in ("bounding_box_train", "query", "bounding_box_test")}
    for d in dirs.values():
        d.mkdir()
    frame = dict.fromkeys(range(1, len(cams) + 1), 0)

    def name(pid, cam):
        frame[cam] += 1
        person = pid if pid < 0 else f"{pid:04d}"
        return f"{person}_c{cam}s{1 + frame[cam] // 500}_{frame[cam]:06d}_{1 + frame[cam] % 7:02d}.jpg"

    train, test = _splits(domain, sizes, cams, seed, bar)
    for im in train:
        _write(im.image, dirs["bounding_box_train"] / name(im.pid, im.cam), style.quality)
    for im in test:
        _write(im.image, dirs["query" if im.query else "bounding_box_test"] / name(im.pid, im.cam), style.quality)
    rng = np.random.default_rng([seed, _DOMAIN_INDEX[domain], 3])
    for _ in range(sizes.distractors):  # pid 0: people outside the test identities
        cam = cams[int(rng.integers(len(cams)))]
        img = render(draw_person(rng, style.wardrobe), style, cam, draw_shot(style, cam, rng))
        _write(img, dirs["bounding_box_test"] / name(0, cam.index), style.quality)
        bar.update()
    for _ in range(sizes.junk):  # pid -1: bad detections (background, fragments)
        cam = cams[int(rng.integers(len(cams)))]
        shot = draw_shot(style, cam, rng)
        person = draw_person(rng, style.wardrobe) if rng.random() < 0.5 else None
        img = render(person, style, cam, replace(shot, scale=shot.scale * 2.2, dy=0.4))
        _write(img, dirs["bounding_box_test"] / name(-1, cam.index), style.quality)
        bar.update()
    (dirs["bounding_box_test"] / "Thumbs.db").write_bytes(b"\0" * 16)  # as in the real release
    return len(train) + len(test) + sizes.distractors + sizes.junk


def _write_msmt(root, domain, style, sizes, cams, seed, bar):
    train, test = _splits(domain, sizes, cams, seed, bar)
    rng = np.random.default_rng([seed, _DOMAIN_INDEX[domain], 4])
    lists = {k: [] for k in ("train", "val", "query", "gallery")}
    for folder, images, offset in (("mask_train_v2", train, 1), ("mask_test_v2", test, 1 + sizes.train_ids)):
        counter: dict[int, int] = {}
        for im in images:
            pid = im.pid - offset  # both releases number train and test ids from 0
            k = counter[pid] = counter.get(pid, -1) + 1
            rel = (
                f"{pid:04d}/{pid:04d}_{k:03d}_{im.cam:02d}_0{3 + im.cam % 2}0{1 + im.cam % 9}"
                f"{cams[im.cam - 1].time}_{int(rng.integers(10000)):04d}_{int(rng.integers(3))}.jpg"
            )
            (root / folder / rel).parent.mkdir(parents=True, exist_ok=True)
            _write(im.image, root / folder / rel, style.quality)
            if folder == "mask_train_v2":
                split = "val" if rng.random() < sizes.val_fraction else "train"
            else:
                split = "query" if im.query else "gallery"
            lists[split].append(f"{rel} {pid}")
    for split, lines in lists.items():
        (root / f"list_{split}.txt").write_text("".join(f"{line}\n" for line in lines))
    return len(train) + len(test)


def _write_cuhk03(root, domain, style, sizes, cams, seed, bar):
    train, test = _splits(domain, sizes, cams, seed, bar)
    for variant in ("detected", "labeled"):
        for sub in ("bounding_box_train", "query", "bounding_box_test"):
            (root / variant / sub).mkdir(parents=True)
    counter: dict[tuple, int] = {}
    for images, is_test in ((train, False), (test, True)):
        for im in images:
            k = counter[im.pid, im.cam] = counter.get((im.pid, im.cam), 0) + 1
            sub = "bounding_box_train" if not is_test else "query" if im.query else "bounding_box_test"
            fname = f"{im.pid:04d}_c{im.cam}_{k:02d}.png"
            _write(im.image, root / "detected" / sub / fname, style.quality)
            _write(im.extra, root / "labeled" / sub / fname, style.quality)
    return len(train) + len(test)


def _write_cuhksysu(root, domain, style, sizes, cams, seed, bar):
    folder = root / "cropped_images"
    folder.mkdir()
    train, test = _splits(domain, sizes, cams, seed, bar)
    scenes = np.random.default_rng([seed, _DOMAIN_INDEX[domain], 5]).permutation(len(train) + len(test)) + 1
    for im, s in zip(train + test, scenes):
        _write(im.image, folder / f"p{im.pid}_s{s}.jpg", style.quality)
    return len(train) + len(test)
