"""Build the ``cropped_images/`` folder used for DG training from the official CUHK-SYSU release."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import loadmat
from tqdm import tqdm

from muse.errors import MuseError
from muse.io import atomic_path

_PERSON = re.compile(r"p(\d+)")
_SCENE = re.compile(r"s(\d+)\.jpg")


def _text(cell) -> str:
    return str(np.asarray(cell).squeeze())


def convert_cuhksysu(raw, out) -> int:
    """Crop every annotated appearance of ``raw/annotation/Person.mat`` from ``raw/Image/SSM/``.

    ``Person`` is a struct array with fields ``idname`` (``p00001``), ``nAppear`` and ``scene``,
    itself a struct array of ``imname`` (``s123.jpg``), ``idlocate`` (box x, y, w, h) and
    ``ishard``. Appearance of person p in scene s is written as ``out/cropped_images/p{p}_s{s}.jpg``,
    the box clipped to the image. The folder appears only when complete. Returns the crop count.
    """
    raw, out = Path(raw), Path(out)
    mat_path, scenes = raw / "annotation" / "Person.mat", raw / "Image" / "SSM"
    for p in (mat_path, scenes):
        if not p.exists():
            raise MuseError(f"{p}: missing from the CUHK-SYSU release")
    try:
        persons = loadmat(mat_path)["Person"].ravel()
    except (KeyError, ValueError, OSError) as e:
        raise MuseError(f"{mat_path}: not a CUHK-SYSU Person.mat ({e})") from None
    count = 0
    with atomic_path(out) as tmp:
        crops = tmp / "cropped_images"
        crops.mkdir(parents=True)
        for person in tqdm(persons, desc="cropping CUHK-SYSU", unit="person"):
            idname = _text(person["idname"])
            m = _PERSON.fullmatch(idname)
            if m is None:
                raise MuseError(f"{mat_path}: person id {idname!r} is not of the form p<number>")
            for scene in np.asarray(person["scene"]).ravel():
                imname = _text(scene["imname"])
                s = _SCENE.fullmatch(imname)
                if s is None:
                    raise MuseError(f"{mat_path}: scene name {imname!r} is not of the form s<number>.jpg")
                x, y, w, h = np.asarray(scene["idlocate"], dtype=float).ravel()[:4]
                try:
                    with Image.open(scenes / imname) as im:
                        box = (max(0, int(x)), max(0, int(y)),
                               min(im.width, int(x + w)), min(im.height, int(y + h)))
                        im.convert("RGB").crop(box).save(crops / f"p{int(m[1])}_s{int(s[1])}.jpg", quality=95)
                except OSError as e:
                    raise MuseError(f"{scenes / imname}: unreadable scene image ({e})") from None
                count += 1
    return count
