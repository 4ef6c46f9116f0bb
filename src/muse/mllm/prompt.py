"""The domain-agnostic prompt (paper Table 1) and its Table 5 variants.

Content order of the user turn: task text, "Query:", query image, " Candidate:", candidate
image, then the rules and the response format. Variants:

- ``dap``: T_task + T_rule + T_resp (the default), as printed in Table 1;
- ``task_resp``: T_task + T_resp;
- ``void``: the two images only;
- ``release``: the DAP as MUSE's released ``prompt_template.json`` writes it: straight quotes,
  "e.g.," in two rules, and the rule lines and the response format on separate lines.

The answer ("Yes"/"No") is the assistant's reply; at inference it is left out and scored at the
first answer position. Images are resized to 280×140 (H×W) before the processor, which then does
not resize again (a 20×10 grid of 14-pixel patches, 50 visual tokens after the 2×2 merge).
"""

from __future__ import annotations

from PIL import Image

from muse.errors import MuseError, readable_image

IMAGE_SIZE = (280, 140)  # H, W

TASK = (
    "You are an expert in person recognition. I will give you a query and a candidate image, "
    "captioned by \u201cQuery:\u201d and \u201cCandidate:\u201d independently. Please tell me whether the "
    "people in the two images have the same identity."
)
RULE = (
    "You should distinguish the people identities based on following criteria: "
    "1. appearance (e.g. age, gender, hair style, hair color, face, body shape, etc.) "
    "2. clothing and wearing (e.g. clothing type, color, style, pattern, etc.) "
    "3. carried objects (e.g. bags, hats, glasses, accessories, etc.) "
    "Please keep in mind that you should never rely on following attributes: "
    "1. background (e.g. location, time, etc.) "
    "2. human pose (e.g. standing, sitting, walking, etc.) "
    "3. occlusion (e.g. covered face, covered body, etc.) "
    "4. camera angle (e.g. front view, side view, back view, etc.)"
)
RESPONSE = (
    "Respond with \u201cYes\u201d if the query and the candidate images have the same identity, "
    "otherwise respond with \u201cNo\u201d."
)
RELEASE_RULES = (
    " You should distinguish the people identities based on following criteria:",
    "1. appearance (e.g., age, gender, hair style, hair color, face, body shape, etc.)",
    "2. clothing and wearing (e.g. clothing type, color, style, pattern, etc.)",
    "3. carried objects (e.g. bags, hats, glasses, accessories, etc.)",
    "Please keep in mind that you should never rely on following attributes:",
    "1. background (e.g., location, time, etc.)",
    "2. human pose (e.g. standing, sitting, walking, etc.)",
    "3. occlusion (e.g. covered face, covered body, etc.)",
    "4. camera angle (e.g. front view, side view, back view, etc.)",
)


def _straight(text: str) -> str:
    return text.replace("\u201c", '"').replace("\u201d", '"')


VARIANTS = ("dap", "task_resp", "void", "release")
ANSWERS = ("Yes", "No")


def load_pair_image(path: str) -> Image.Image:
    """An RGB image resized to 280×140 (H×W)."""
    with readable_image(path), Image.open(path) as im:
        return im.convert("RGB").resize((IMAGE_SIZE[1], IMAGE_SIZE[0]), Image.BICUBIC)


class PairImages(dict):
    """Images by path, each loaded and resized once (:func:`load_pair_image`)."""

    def __missing__(self, path: str) -> Image.Image:
        self[path] = image = load_pair_image(path)
        return image


def user_content(variant: str = "dap") -> list[dict]:
    """The user turn as chat content items; the two images are ``{"type": "image"}`` placeholders
    filled, in order, by the query and the candidate."""
    if variant not in VARIANTS:
        raise MuseError(f"unknown prompt variant '{variant}': expected one of {', '.join(VARIANTS)}")
    if variant == "void":
        return [{"type": "image"}, {"type": "image"}]
    task = _straight(TASK) if variant == "release" else TASK
    tail = {
        "dap": f" {RULE} {RESPONSE}",
        "task_resp": f" {RESPONSE}",
        "release": "\n".join([*RELEASE_RULES, _straight(RESPONSE)]),
    }[variant]
    return [
        {"type": "text", "text": f"{task} Query:"},
        {"type": "image"},
        {"type": "text", "text": " Candidate:"},
        {"type": "image"},
        {"type": "text", "text": tail},
    ]


def messages(variant: str = "dap", answer: str | None = None) -> list[dict]:
    """Chat messages of one pair; with ``answer`` the assistant turn holds it (for fine-tuning)."""
    msgs = [{"role": "user", "content": user_content(variant)}]
    if answer is not None:
        if answer not in ANSWERS:
            raise MuseError(f"answer {answer!r}: expected 'Yes' or 'No'")
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return msgs
