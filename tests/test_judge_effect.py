"""Each shipped pretrained judge's signal reaches the ranking: on a small world it improves the
base ranking through μ-fusion, and the same logits swapped (Yes↔No) or given to the wrong
candidates do not."""

import numpy as np
import pytest

from muse.data.formats import manifest
from muse.data.synthetic import Sizes, generate_domain
from muse.diagnostics import diagnose
from muse.distance import Distance
from muse.evaluate import evaluate
from muse.io import Features, Scores
from muse.mllm.model import load, pretrained_dir
from muse.mllm.prompt import load_pair_image
from muse.mllm.score import Judge, score_queries

C, ALPHA, TAU = 10, 0.2, 1.0  # τ = 1: the small judge's logit gaps are a few units, not a real MLLM's tens


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl"])
def scored(tmp_path_factory, request):
    """A small MA test set, thumbnail features (a weak base distance) and the judge's logits."""
    root = tmp_path_factory.mktemp("world") / "MA"
    generate_domain(
        "MA",
        root,
        Sizes(train_ids=1, test_ids=24, cameras=4, cams_per_id=(2, 3), images_per_camera=(2, 2)),
        seed=11,
        progress=False,
    )
    df = manifest("market1501", root, check=False, progress=False)
    df = df[df.split.isin(["query", "gallery"]) & (df.pid > 0)]
    thumbs = np.stack([np.asarray(load_pair_image(p).resize((4, 8))).astype(np.float32).ravel() for p in df.path])
    feats = Features(
        thumbs - thumbs.mean(0), df.pid.to_numpy(), df.camid.to_numpy(), df.path.to_numpy(), df.split.to_numpy()
    )
    q, g = feats.subset("query"), feats.subset("gallery")
    cand = Distance(q.feats, g.feats).top_candidates(C)
    judge = Judge(*load(pretrained_dir(request.param)))
    s_yes, s_no = score_queries(judge, q.paths, g.paths, cand, progress=False)
    return q, g, Scores(cand, s_yes, s_no)


def mAP(q, g, scores=None):
    d = Distance(q.feats, g.feats)
    if scores is not None:
        d.fuse(scores.cand, scores.s_yes, scores.s_no, ALPHA, TAU, C)
    return evaluate(d.query_blocks(), q.pids, q.camids, g.pids, g.camids)["mAP"]


def test_the_pretrained_judge_improves_the_ranking_and_its_corruptions_do_not(scored):
    q, g, s = scored
    auc = diagnose(q, g, s, C)
    assert auc["judge_auc"] > auc["base_auc"] and auc["judge_auc"] > 0.75, auc
    base, fused = mAP(q, g), mAP(q, g, s)
    swapped = mAP(q, g, Scores(s.cand, s.s_no, s.s_yes))
    shuffled = mAP(q, g, Scores(s.cand, *(x[np.random.default_rng(0).permutation(len(x))] for x in (s.s_yes, s.s_no))))
    assert fused > base + 0.02, (base, fused)
    assert swapped < base < fused and shuffled < fused, (base, fused, swapped, shuffled)
