"""The MLLM judge: building, prompting, fine-tuning and scoring Qwen2-VL / Qwen2.5-VL."""

ARCHITECTURES = ("qwen2_vl", "qwen2_5_vl")  # the judge architectures, named as in transformers
