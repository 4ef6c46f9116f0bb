"""Reading the pipeline's YAML configuration outside Snakemake."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import yaml

from muse.errors import MuseError


def load_config(path) -> dict:
    """The parsed YAML mapping at ``path``; a missing or malformed file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise MuseError(f"{path}: config file not found")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise MuseError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise MuseError(f"{path}: expected a mapping at the top level")
    return cfg


def workflow_config(configfiles=(), base="config.yaml") -> dict:
    """The config a workflow run sees: ``base`` (config.yaml), or with ``configfiles`` (Snakemake's
    ``--configfile``) those files alone, each updating the one before as Snakemake merges them
    (mappings key by key, anything else replaced); the Snakefile reads config.yaml only without them."""

    def update(a: dict, b: dict) -> dict:
        return {
            **a,
            **{k: update(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v for k, v in b.items()},
        }

    if not configfiles:
        return load_config(base)
    cfg: dict = {}
    for path in configfiles:
        cfg = update(cfg, load_config(path))
    return cfg


def check_schema(config: dict, schema_path) -> None:
    """The config against the JSON schema at ``schema_path`` (workflow/schemas/config.schema.yaml):
    the most relevant violation (jsonschema's ``best_match``) as one line naming the key path."""
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "top level"
        raise MuseError(f"config: {where}: {error.message}")


def from_section(cls, section: dict, key: str):
    """An instance of the dataclass ``cls`` from the config mapping at ``key`` (lists become
    tuples); an unknown field is a one-line error naming ``key``."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise MuseError(f"{key}.{unknown[0]}: unknown key (expected one of {', '.join(sorted(known))})")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in section.items()})
