"""Rendering in the synthetic world: cameras (scene, gain, colour cast, blur), shots (view,
walking pose, scale, position, occluder) and the image of a person in a shot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from muse.data.synthetic.people import Person, pick
from muse.data.synthetic.styles import Style


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
    view = pick(rng, ("front", "back", "side"), style.views)
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
