"""The synthetic person world: the embedded default data, in the real datasets' formats.

A pedestrian's identity lives in the cues that the MLLM prompt (Table 1) names
(:mod:`.people`). Each image renders one identity under nuisances that belong to the domain
and its cameras (:mod:`.rendering`): background scene, illumination, a per-camera colour cast,
blur, sensor noise, scale and position, viewpoint (front/back/side), walking pose and partial
occlusion. Domains differ only in their :class:`~.styles.Style` (:mod:`.styles`): those
nuisances' ranges, their clothing priors (a summer campus, a winter campus, an indoor campus,
street snapshots), as the real datasets do, and the real layout each is written in
(:mod:`.world` and the writers of :mod:`muse.data.formats`).
"""

from muse.data.synthetic.people import Person, Wardrobe, draw_person
from muse.data.synthetic.rendering import Camera, Shot, draw_camera, draw_shot, render
from muse.data.synthetic.styles import LAYOUT, STYLES, Style
from muse.data.synthetic.world import REAL_SHAPES, Sizes, generate_domain, make_cameras

__all__ = [
    "LAYOUT",
    "REAL_SHAPES",
    "STYLES",
    "Camera",
    "Person",
    "Shot",
    "Sizes",
    "Style",
    "Wardrobe",
    "draw_camera",
    "draw_person",
    "draw_shot",
    "generate_domain",
    "make_cameras",
    "render",
]
