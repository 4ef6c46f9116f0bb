"""MUSE: MLLM-empowered re-ranking for domain-generalizable person re-identification."""

__version__ = "0.1.0"
