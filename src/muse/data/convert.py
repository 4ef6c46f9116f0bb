"""Build the ``cropped_images/`` folder used for DG training from the official CUHK-SYSU release."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import loadmat
from scipy.io.matlab import MatReadError
from tqdm import tqdm

from muse.errors import MuseError, readable_image
from muse.io import atomic_path

_PERSON = re.compile(r"p(\d+)")
_SCENE = re.compile(r"s(\d+)\.jpg")


def _text(cell) -> str:
    return str(np.asarray(cell).squeeze())


SPLITS = {  # which persons are cropped: the file under annotation/ and its variable
    "train": ("test/train_test/Train.mat", "Train"),  # the 5,532 training identities (MUSE's release)
    "all": ("Person.mat", "Person"),  # all 11,934 (the literature's "protocol 2")
}


def _persons(mat_path: Path, variable: str) -> list:
    """The person records of ``variable``: a struct array (Person.mat) or a cell array of 1×1
    structs (Train.mat), each with fields ``idname``, ``nAppear`` and ``scene``."""
    try:
        items = loadmat(mat_path)[variable].ravel()
        return [item.ravel()[0] if isinstance(item, np.ndarray) else item for item in items]
    except (KeyError, ValueError, IndexError, OSError, MatReadError) as e:
        raise MuseError(f"{mat_path}: not a CUHK-SYSU {mat_path.name} ({e})") from None


def convert_cuhksysu(raw, out, split: str = "train") -> int:
    """Crop the annotated appearances of the persons of ``split`` from ``raw/Image/SSM/``:
    ``train`` reads ``raw/annotation/test/train_test/Train.mat`` (the training split, as MUSE's
    release), ``all`` reads ``raw/annotation/Person.mat`` (every person).

    A person has ``idname`` (``p00001``), ``nAppear`` and ``scene``, a struct array of ``imname``
    (``s123.jpg``), ``idlocate`` (box x, y, w, h) and ``ishard``. Appearance of person p in
    scene s is written as ``out/cropped_images/p{p}_s{s}.jpg``, the box clipped to the image.
    The folder appears only when complete. Returns the crop count.
    """
    if split not in SPLITS:
        raise MuseError(f"unknown CUHK-SYSU split '{split}': expected one of {', '.join(SPLITS)}")
    raw, out = Path(raw), Path(out)
    name, variable = SPLITS[split]
    mat_path, scenes = raw / "annotation" / name, raw / "Image" / "SSM"
    for p in (mat_path, scenes):
        if not p.exists():
            raise MuseError(f"{p}: missing from the CUHK-SYSU release")
    persons = _persons(mat_path, variable)
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
                with readable_image(scenes / imname), Image.open(scenes / imname) as im:
                    box = (max(0, int(x)), max(0, int(y)), min(im.width, int(x + w)), min(im.height, int(y + h)))
                    im.convert("RGB").crop(box).save(crops / f"p{int(m[1])}_s{int(s[1])}.jpg", quality=95)
                count += 1
    return count
