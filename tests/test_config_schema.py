"""One config truth: the workflow's schema names exactly the library's fields and choices, and it
rejects the values the library would reject later (so a dry run fails on them)."""

import copy
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from muse.config import check_schema, from_section
from muse.data.formats import LAYOUTS
from muse.data.openworld import CorpusSpec
from muse.data.protocols import PROTOCOLS
from muse.encoder.train import TrainConfig
from muse.errors import MuseError
from muse.intervals import Bootstrap
from muse.mining import STRATEGIES
from muse.mllm import ARCHITECTURES
from muse.mllm.pretrain import PretrainConfig
from muse.mllm.prompt import VARIANTS
from muse.mllm.sft import SFTConfig
from muse.paper import TABLES
from muse.rerank import DEFAULTS, METHODS, params_for

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "workflow/schemas/config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())
PROPS = SCHEMA["properties"]


@pytest.mark.parametrize(
    "section, cls",
    [
        (PROPS["encoder"]["properties"]["train"], TrainConfig),
        (PROPS["mllm"]["properties"]["sft"], SFTConfig),
        (PROPS["pretrain"]["properties"]["recipe"], PretrainConfig),
        (PROPS["pretrain"]["properties"]["corpus"], CorpusSpec),
        (PROPS["intervals"], Bootstrap),
    ],
)
def test_schema_sections_name_the_dataclass_fields(section, cls):
    assert set(section["properties"]) == {f.name for f in fields(cls)}
    assert section["additionalProperties"] is False


def test_schema_choices_are_the_librarys():
    rerank = PROPS["rerank"]["properties"]
    assert {m: set(rerank[m]["properties"]) for m in rerank} == {m: set(p) for m, p in DEFAULTS.items() if p}
    assert set(PROPS["sweeps"]["properties"]["rerank"]["enum"]) == set(METHODS)
    assert set(SCHEMA["$defs"]["protocol"]["enum"]) == set(PROTOCOLS)
    assert set(PROPS["pretrain"]["properties"]["recipe"]["properties"]["arch"]["enum"]) == set(ARCHITECTURES)
    assert SCHEMA["$defs"]["dataset"]["properties"]["format"]["enum"] == list(LAYOUTS)
    assert set(PROPS["tables"]["items"]["enum"]) == set(TABLES)
    assert PROPS["mllm"]["properties"]["sft"]["properties"]["prompt"]["enum"] == list(VARIANTS)
    assert PROPS["pretrain"]["properties"]["recipe"]["properties"]["prompts"]["items"]["enum"] == list(VARIANTS)
    assert set(STRATEGIES) == {"qchm", "random"}  # mining strategies are not a config value


BAD = [  # (path to the value, bad value): the library refuses each one too
    (("rerank", "krnn", "lam"), 1.5),
    (("rerank", "krnn", "k1"), 0),
    (("rerank", "ecn", "k"), 0),
    (("rerank", "caj", "qe"), "camera-aware"),
    (("rerank", "caj", "k2_inter"), -1),
    (("rerank", "krnn", "k3"), 4),
    (("sweeps", "protocol"), "MA2CS"),
    (("figure5", "protocol"), "XX2MA"),
    (("figure5", "queries"), 0),
    (("muse", "alpha"), 1.2),
    (("intervals", "level"), 1.0),
    (("intervals", "resamples"), 0),
    (("intervals", "seed"), -1),
]


@pytest.mark.parametrize("path, value", BAD, ids=[".".join(p) for p, _ in BAD])
def test_the_schema_rejects_what_the_library_rejects(path, value):
    cfg = copy.deepcopy(CONFIG)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(MuseError) as e:
        check_schema(cfg, SCHEMA_PATH)
    line = str(e.value)  # one line naming the key path (or, for an unknown key, its parent and the key)
    named = line.startswith(f"config: {'.'.join(path)}: ") or f"'{path[-1]}' was unexpected" in line
    assert "\n" not in line and named, line
    if path[0] == "rerank":
        with pytest.raises(MuseError):
            params_for(path[1], {**CONFIG["rerank"][path[1]], path[2]: value})
    if path[0] == "intervals":
        with pytest.raises(MuseError, match=f"intervals.{path[1]}"):
            from_section(Bootstrap, {**CONFIG["intervals"], path[1]: value}, "intervals")


def test_paper_config_steps_with_the_release_effective_batch():
    """The release fine-tunes with 2 pairs per GPU on 4 GPUs: 8 pairs per optimizer step."""
    mllm = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())["mllm"]
    assert mllm["sft"]["batch"] * mllm["sft"]["grad_accum"] * mllm["sft_gpus"] == 8


def test_the_shipped_configs_are_valid():
    for name in ("config.yaml", "configs/paper.yaml"):
        check_schema(yaml.safe_load((ROOT / name).read_text()), SCHEMA_PATH)
