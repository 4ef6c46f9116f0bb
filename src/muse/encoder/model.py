"""The baseline Re-ID encoder (paper §4.1, MUSE's released recipe) on open_clip's image tower.

    x ─► CLIP ViT (QuickGELU; projected CLS token f) ─► BNNeck (bias frozen) ─► f_bn
                                                                 └─► linear classifier (no bias)

The prototypical contrastive loss works on f_bn / ‖f_bn‖, the normalised BNNeck output, as the
release and PCL-CLIP do (eq. 1 names "the feature f from CLIP's image encoder"); the identity
loss on the classifier over f_bn; the test feature is f_bn / ‖f_bn‖.
The patch-embedding convolution is frozen. The tower is built from an open_clip CLIP config
(``embed_dim``, ``vision_cfg``, ``text_cfg``, ``quick_gelu``): ViT-B-16 at 256×128 for real
runs, a small ViT for the embedded default — the same class either way. Pretrained OpenAI
weights come from a local file; the 14×14 positional grid is resized to the model's grid
bilinearly, as MUSE does.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from muse.errors import MuseError
from muse.io import atomic_path

WEIGHTS, CONFIG = "model.safetensors", "config.json"


def clip_config(name: str | None = None, image_size=(256, 128), **overrides) -> dict:
    """An open_clip CLIP config: a named one (e.g. ``ViT-B-16-quickgelu``) at ``image_size``, or
    the given fields (``embed_dim``, ``vision_cfg``, ``text_cfg``) for a small model."""
    if name is not None:
        cfg = open_clip.get_model_config(name)
        if cfg is None:
            raise MuseError(f"encoder.clip.name '{name}': not an open_clip model config")
    else:
        cfg = {}
    cfg = {**cfg, **overrides}
    cfg["vision_cfg"] = {**cfg["vision_cfg"], "image_size": list(image_size)}
    cfg["quick_gelu"] = True
    return cfg


def clip_from_config(encoder: dict) -> dict:
    """The CLIP config named by the ``encoder`` config section (``clip``, ``image_size``)."""
    clip = dict(encoder["clip"])
    return clip_config(clip.pop("name", None), encoder["image_size"], **clip)


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive: a zip file with the compiled code's ``constants.pkl``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") for n in z.namelist())


def _read_state_dict(path: Path) -> dict:
    """The tensors of a CLIP checkpoint: safetensors, a (``state_dict``-wrapped) pickled state dict,
    or OpenAI's TorchScript archive (by ``torch.jit.load``, which runs no pickled code)."""
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except (OSError, SafetensorError) as e:
            raise MuseError(f"{path}: unreadable safetensors ({str(e).splitlines()[0]})") from None
    try:
        if _is_torchscript(path):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, OpenAI's files are not
                sd = torch.jit.load(path, map_location="cpu").state_dict()  # OpenAI's ViT-B-16.pt
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # whatever torch raises on a file that is neither: one line
        raise MuseError(f"{path}: not a CLIP checkpoint ({str(e).splitlines()[0]})") from None
    sd = sd.get("state_dict", sd) if isinstance(sd, dict) else {}
    return {k.removeprefix("module."): v for k, v in sd.items() if isinstance(v, torch.Tensor)}


def resize_grid(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(1 + g·g, w) positional embedding → (1 + H·W, w): the class token kept, the grid resized
    bilinearly (align_corners=False)."""
    cls, rest = pos[:1], pos[1:]
    g = int(round(rest.shape[0] ** 0.5))
    if g * g != rest.shape[0]:
        raise MuseError(f"positional embedding of {rest.shape[0]} tokens is not a square grid")
    img = rest.reshape(1, g, g, -1).permute(0, 3, 1, 2).float()
    img = F.interpolate(img, size=tuple(grid), mode="bilinear", align_corners=False)
    return torch.cat([cls.float(), img.permute(0, 2, 3, 1).reshape(-1, pos.shape[1])])


def load_clip_visual(visual: nn.Module, path) -> None:
    """Load the image tower of a CLIP checkpoint (``visual.*`` keys; open_clip .bin/.safetensors or
    OpenAI's .pt) into ``visual``, resizing the positional grid to ``visual.grid_size``."""
    path = Path(path)
    if not path.is_file():
        raise MuseError(f"{path}: CLIP weights file not found (encoder.weights)")
    sd = {k[len("visual.") :]: v.float() for k, v in _read_state_dict(path).items() if k.startswith("visual.")}
    if not sd:
        raise MuseError(f"{path}: no 'visual.*' weights in this checkpoint")
    try:
        if sd["positional_embedding"].shape != visual.positional_embedding.shape:
            sd["positional_embedding"] = resize_grid(sd["positional_embedding"], visual.grid_size)
        visual.load_state_dict(sd, strict=True)
    except KeyError as e:
        raise MuseError(f"{path}: weights do not fit encoder.clip (no {e.args[0]})") from None
    except (MuseError, RuntimeError) as e:  # torch's first line is a header; name the first mismatch
        lines = [x.strip() for x in str(e).splitlines() if x.strip()]
        detail = (lines[1:] or lines)[0]
        detail = detail if len(detail) <= 160 else f"{detail[:160]}…"
        raise MuseError(f"{path}: weights do not fit encoder.clip ({detail})") from None


# OpenAI's archives hold these three integers beside the weights (open_clip's loader drops them)
OPENAI_EXTRAS = ("input_resolution", "context_length", "vocab_size")


def write_openai_clip(out, name: str = "ViT-B-16-quickgelu", seed: int = 0) -> Path:
    """A CLIP with random weights written as OpenAI distributes it (``ViT-B-16.pt``): a TorchScript
    archive of the whole model (image and text towers, traced image forward), its state under
    OpenAI's names (open_clip's CLIP uses the same) with ``input_resolution``, ``context_length``
    and ``vocab_size``, the linear, convolution and projection weights in fp16 and the rest in fp32,
    as OpenAI's ``convert_weights`` leaves them. Written atomically; returns ``out``."""
    from open_clip.model import convert_weights_to_fp16

    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise MuseError(f"'{name}': not an open_clip model config")
    torch.manual_seed(seed)
    clip = open_clip.CLIP(**cfg).eval()
    persistent = clip.state_dict()

    class OpenAIArchive(nn.Module):
        def __init__(self):
            super().__init__()
            for child, module in clip.named_children():
                self.add_module(child, module)
            for key, p in clip.named_parameters(recurse=False):
                self.register_parameter(key, p)
            for key, b in clip.named_buffers(recurse=False):
                if key in persistent:
                    self.register_buffer(key, b)
            vision, text = cfg["vision_cfg"], cfg["text_cfg"]
            for key, value in zip(OPENAI_EXTRAS, (vision["image_size"], text["context_length"], text["vocab_size"])):
                self.register_buffer(key, torch.tensor(value))

        def forward(self, image):
            return self.visual(image)

    size = cfg["vision_cfg"]["image_size"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; OpenAI's files are TorchScript
        archive = torch.jit.trace(OpenAIArchive().eval(), torch.zeros(1, 3, size, size), check_trace=False)
        convert_weights_to_fp16(clip)  # after tracing in fp32; the archive shares the parameters
        with atomic_path(out) as tmp:
            archive.save(str(tmp))
    return Path(out)


class ReIDEncoder(nn.Module):
    """CLIP image tower + BNNeck + classifier; ``forward`` gives (f_bn, logits) in training and
    the L2-normalised f_bn in evaluation."""

    def __init__(self, clip: dict, num_classes: int):
        super().__init__()
        self.config = {"clip": clip, "num_classes": num_classes}
        self.visual = open_clip.CLIP(**clip).visual
        self.visual.conv1.requires_grad_(False)
        dim = clip["embed_dim"]
        self.bottleneck = nn.BatchNorm1d(dim)
        self.bottleneck.bias.requires_grad_(False)
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.config["clip"]["vision_cfg"]["image_size"])

    def forward(self, x: torch.Tensor):
        f = self.visual(x)
        f_bn = self.bottleneck(f)
        if self.training:
            return f_bn, self.classifier(f_bn)
        return F.normalize(f_bn, dim=1)

    def save_pretrained(self, out) -> None:
        """``out/model.safetensors`` + ``out/config.json``, written as one directory, atomically."""
        with atomic_path(out) as tmp:
            tmp.mkdir()
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, tmp / WEIGHTS)
            (tmp / CONFIG).write_text(json.dumps(self.config, indent=2))

    @classmethod
    def from_pretrained(cls, path) -> ReIDEncoder:
        path = Path(path)
        for f in (CONFIG, WEIGHTS):
            if not (path / f).is_file():
                raise MuseError(f"{path / f}: missing (not an encoder directory)")
        try:
            model = cls(**json.loads((path / CONFIG).read_text()))
        except (ValueError, TypeError) as e:
            raise MuseError(f"{path / CONFIG}: not an encoder config ({str(e).splitlines()[0]})") from None
        try:
            weights = load_file(path / WEIGHTS)
        except (OSError, SafetensorError) as e:
            raise MuseError(f"{path / WEIGHTS}: unreadable safetensors ({str(e).splitlines()[0]})") from None
        model.load_state_dict(weights)
        return model.eval()
