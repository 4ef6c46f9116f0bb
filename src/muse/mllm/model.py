"""The MLLM judge: Qwen2-VL through transformers' own classes, real or tiny.

Real checkpoints (Qwen2-VL-2B-Instruct, Qwen2.5-VL-7B-Instruct) are read from a local directory
(no download, no ``trust_remote_code``). A tiny model of the embedded default is the same class
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

TINY_TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "max_position_embeddings": 4096,
             "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}}
PATCHES = {"patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}

# arch -> (config class, model class, processor class, tiny vision config); the vision towers
# differ as in the real models: Qwen2.5-VL has SwiGLU blocks, RMSNorm and window attention.
ARCHS = {
    "qwen2_vl": (Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor,
                 {"depth": 2, "embed_dim": 32, "num_heads": 2, "mlp_ratio": 2, "hidden_size": 64, **PATCHES}),
    "qwen2_5_vl": (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                   {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
                    "window_size": 56, "fullatt_block_indexes": [1], **PATCHES}),
}


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


def init_tiny(out, seed: int = 0, arch: str = "qwen2_vl") -> Path:
    """Write a tiny checkpoint directory (model + processor) of ``arch`` (a key of :data:`ARCHS`) at ``out``."""
    if arch not in ARCHS:
        raise MuseError(f"unknown MLLM architecture '{arch}': expected one of {', '.join(ARCHS)}")
    config_cls, model_cls, _, vision = ARCHS[arch]
    processor = tiny_processor(arch)
    tok = processor.tokenizer
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL}
    config = config_cls(
        text_config={**TINY_TEXT, "vocab_size": len(tok), "bos_token_id": ids["<|endoftext|>"],
                     "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]},
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = model_cls(config)
    with atomic_path(out) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return Path(out)


def answer_ids(tokenizer) -> tuple[int, int]:
    """Token ids of "Yes" and "No" (no leading space: they follow ``assistant\\n``)."""
    out = []
    for word in ANSWERS:
        ids = tokenizer.encode(word, add_special_tokens=False)
        if len(ids) != 1:
            raise MuseError(f"'{word}' is {len(ids)} tokens for this tokenizer: the judge needs single tokens")
        out.append(ids[0])
    return tuple(out)


def load(model_dir, adapter=None, dtype: torch.dtype = torch.float32, device=None, merge: bool = True):
    """(model, processor, (yes_id, no_id)) from local directories; the LoRA ``adapter`` is merged
    into the weights unless ``merge`` is False."""
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
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    return model, processor, answer_ids(processor.tokenizer)
