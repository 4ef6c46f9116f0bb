"""People of the synthetic world: the identity cues the MLLM prompt (Table 1) names.

Body shape (height, build), hair (style, colour), skin tone, clothing (upper type, colour and
pattern; lower type and colour; shoes), carried objects and accessories, drawn from a domain's
clothing prior (:class:`Wardrobe`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


def pick(rng, options, p=None):
    return options[rng.choice(len(options), p=p)]


def _colour(rng, dark: float):
    names = DARK if rng.random() < dark else tuple(COLOURS)
    return COLOURS[pick(rng, names)]


def draw_person(rng: np.random.Generator, wardrobe: Wardrobe = Wardrobe()) -> Person:
    """Draw one identity's cues from a domain's wardrobe."""
    upper = pick(rng, UPPER_TYPES, wardrobe.upper)
    lower = pick(rng, LOWER_TYPES, wardrobe.lower)
    return Person(
        height=float(rng.uniform(0.86, 1.0)),
        build=float(rng.uniform(0.8, 1.25)),
        skin=SKIN[rng.integers(len(SKIN))],
        hair_style=pick(rng, HAIR_STYLES, (0.45, 0.3, 0.15, 0.1)),
        hair=HAIR[pick(rng, tuple(HAIR))],
        upper_type=upper,
        upper=_colour(rng, wardrobe.dark),
        inner=_colour(rng, 0.2),
        pattern=pick(rng, PATTERNS, (0.4, 0.15, 0.15, 0.15, 0.15)),
        pattern_colour=_colour(rng, 0.2),
        lower_type=lower,
        lower=_colour(rng, wardrobe.dark + 0.2),
        shoes=_colour(rng, 0.6),
        carry=pick(rng, CARRY, (0.4, 0.25, 0.2, 0.15)),
        carry_colour=_colour(rng, 0.4),
        hat=_colour(rng, 0.3) if rng.random() < wardrobe.hat else None,
        glasses=bool(rng.random() < 0.2),
        scarf=_colour(rng, 0.2) if rng.random() < wardrobe.scarf else None,
    )
