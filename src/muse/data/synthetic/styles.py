"""Domain styles of the synthetic world: every difference between two domains is a field here.

====  ==========  ===============================================================
MA    market1501  outdoor summer campus, 6 cameras, distractors (pid 0), junk (−1)
MS    msmt17      winter, indoor + outdoor cameras, three times of day
C3    cuhk03np    indoor, 2 cameras, ``labeled`` (tight) and ``detected`` (loose) boxes
CS    cuhksysu    street snapshots, every image its own scene, frequent occlusion
====  ==========  ===============================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from muse.data.synthetic.people import Wardrobe


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
    layout: str = "market1501"  # the real format the domain is written in (muse.data.formats)
    times: tuple[str, ...] = ("noon",)  # times of day a camera is drawn from (dimmer off noon)
    snapshots: bool = False  # each image from a camera drawn anew, not from the identity's cameras
    twin_boxes: bool = False  # each shot also boxed loosely (CUHK03's detected next to labeled)


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
        layout="msmt17",
        times=("morning", "noon", "afternoon"),
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
        layout="cuhk03np",
        twin_boxes=True,
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
        layout="cuhksysu",
        snapshots=True,
    ),
}
LAYOUT = {domain: style.layout for domain, style in STYLES.items()}
STREAM = {domain: i for i, domain in enumerate(STYLES)}  # a domain's key in the random streams
