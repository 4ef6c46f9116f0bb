"""The MLLM judge: Qwen2-VL through transformers' own classes, real or tiny.

Real checkpoints (Qwen2-VL-2B-Instruct, Qwen2.5-VL-7B-Instruct) are read from a local directory
(no download, no ``trust_remote_code``). The embedded default's judges are small models of the
same classes pretrained on the open-world corpus and shipped with the package
(:func:`pretrained_dir`). A small model (:data:`SIZES`) is the same class
(``Qwen2VLForConditionalGeneration`` or ``Qwen2_5_VLForConditionalGeneration``, :data:`ARCHS`)
with a small config, saved with an offline processor: a byte-level BPE tokenizer with Qwen's
special tokens whose merges make every word of the prompt (and "Yes", "No") one token, Qwen2-VL's
image and video processors and its chat template.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (AutoModelForImageTextToText, AutoProcessor, Qwen2_5_VLConfig,
                          Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2TokenizerFast, Qwen2VLConfig,
                          Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor,
                          Qwen2VLVideoProcessor)

from muse.errors import MuseError
from muse.io import atomic_path
from muse.mllm.prompt import ANSWERS, RESPONSE, RULE, TASK

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
           "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
           "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

PATCHES = {"patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}

# arch -> (config class, model class, processor class); the vision towers differ as in the real
# models: Qwen2.5-VL has SwiGLU blocks, RMSNorm and window attention.
ARCHS = {
    "qwen2_vl": (Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor),
    "qwen2_5_vl": (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor),
}


def _text(width: int, layers: int, heads: int, init: float | None) -> dict:
    """A small LLM config; M-RoPE's (t, h, w) sections split the rotary half of the head dim 2:3:3;
    ``init``: the std of its weights at initialisation (None: transformers' 0.02)."""
    half = width // heads // 2
    t = half // 4
    return {**({"initializer_range": init} if init else {}), "hidden_size": width, "intermediate_size": 2 * width, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": heads // 2, "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                "mrope_section": [t, (half - t) // 2, half - t - (half - t) // 2]}}


def _vision(arch: str, width: int, depth: int, heads: int, out: int) -> dict:
    if arch == "qwen2_vl":
        return {"depth": depth, "embed_dim": width, "num_heads": heads, "mlp_ratio": 2, "hidden_size": out, **PATCHES}
    return {"depth": depth, "hidden_size": width, "intermediate_size": 2 * width, "num_heads": heads,
            "out_hidden_size": out, "window_size": 56, "fullatt_block_indexes": list(range(1, depth, 2)), **PATCHES}


# size -> (LLM width, layers, heads, init std; vision width, depth, heads). `tiny`: plumbing for the
# tests; `small`: the embedded default's pretrained judges (muse.mllm.pretrain), whose language
# model starts at std 1/√width: at 0.02 it stays on the 50/50 plateau for thousands of pairs.
SIZES = {"tiny": (64, 2, 4, None, 32, 2, 2), "small": (128, 2, 4, 128 ** -0.5, 128, 4, 4)}


def small_config(arch: str, size: str = "tiny") -> tuple[dict, dict]:
    """(text config, vision config) of a small model of ``arch``."""
    width, layers, heads, init, v_width, v_depth, v_heads = SIZES[size]
    return _text(width, layers, heads, init), _vision(arch, v_width, v_depth, v_heads, width)


def _byte_level_bpe() -> Tokenizer:
    """Byte-level BPE whose merges spell, left to right, every word of the prompt and chat template
    (with and without a leading space), so each is one token; anything else falls back to bytes."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    words = set(re.findall(r"[A-Za-z]+", " ".join([TASK, RULE, RESPONSE, "Query Candidate system user assistant "
                                                   "You are a helpful assistant", *ANSWERS])))
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    merges = []
    pieces = [(w[:end - 1], w[end - 1]) for w in sorted(words) for end in range(2, len(w) + 1)]
    spaced = [("\u0120", w) for w in sorted(words)]            # Ġ marks a leading space
    for left, right in pieces + spaced:
        if left + right not in vocab:
            vocab[left + right] = len(vocab)
            merges.append((left, right))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def tiny_processor(arch: str = "qwen2_vl"):
    tokenizer = Qwen2TokenizerFast(tokenizer_object=_byte_level_bpe(), eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", additional_special_tokens=SPECIAL,
                                   model_max_length=4096)
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL})
    pixels = 280 * 140
    return ARCHS[arch][2](image_processor=Qwen2VLImageProcessor(min_pixels=pixels, max_pixels=pixels),
                            tokenizer=tokenizer,
                            video_processor=Qwen2VLVideoProcessor(min_pixels=pixels, max_pixels=pixels),
                            chat_template=CHAT_TEMPLATE)


def init_tiny(out, seed: int = 0, arch: str = "qwen2_vl", size: str = "tiny") -> Path:
    """Write a small checkpoint directory (model + processor) of ``arch`` (a key of :data:`ARCHS`)
    and ``size`` (a key of :data:`SIZES`) at ``out``, with random weights."""
    model, processor = build_small(arch, size, seed)
    with atomic_path(out) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return Path(out)


def build_small(arch: str = "qwen2_vl", size: str = "tiny", seed: int = 0):
    """(model, processor) of a small ``arch`` model of ``size``, randomly initialised from ``seed``."""
    if arch not in ARCHS:
        raise MuseError(f"unknown MLLM architecture '{arch}': expected one of {', '.join(ARCHS)}")
    if size not in SIZES:
        raise MuseError(f"unknown model size '{size}': expected one of {', '.join(SIZES)}")
    config_cls, model_cls, _ = ARCHS[arch]
    text, vision = small_config(arch, size)
    processor = tiny_processor(arch)
    tok = processor.tokenizer
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL}
    config = config_cls(
        text_config={**text, "vocab_size": len(tok), "bos_token_id": ids["<|endoftext|>"],
                     "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]},
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    return model_cls(config), processor


def pretrained_dir(arch: str) -> Path:
    """The shipped pretrained judge of ``arch`` (a ``small`` model pretrained on the open-world
    corpus by :mod:`muse.mllm.pretrain`; its ``provenance.json`` says how)."""
    if arch not in ARCHS:
        raise MuseError(f"pretrained:{arch}: no such judge (expected one of {', '.join('pretrained:' + a for a in ARCHS)})")
    return Path(__file__).parent / "pretrained" / arch


def answer_ids(tokenizer) -> tuple[int, int]:
    """Token ids of "Yes" and "No" (no leading space: they follow ``assistant\\n``)."""
    out = []
    for word in ANSWERS:
        ids = tokenizer.encode(word, add_special_tokens=False)
        if len(ids) != 1:
            raise MuseError(f"'{word}' is {len(ids)} tokens for this tokenizer: the judge needs single tokens")
        out.append(ids[0])
    return tuple(out)


def load(model_dir, adapter=None, dtype: torch.dtype | None = None, device=None, merge: bool = True):
    """(model, processor, (yes_id, no_id)) from local directories; the LoRA ``adapter`` is merged
    into the weights unless ``merge`` is False. ``dtype`` defaults to bf16 on a GPU (as the
    paper scores) and fp32 on the CPU."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise MuseError(f"{model_dir}: not a model directory (no config.json)")
    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, local_files_only=True, dtype=dtype)
    if adapter is not None:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise MuseError(f"{adapter}: not a LoRA adapter directory (no adapter_config.json)")
        model = PeftModel.from_pretrained(model, adapter)
        if merge:
            model = model.merge_and_unload()
    model.to(device).eval()
    return model, processor, answer_ids(processor.tokenizer)
