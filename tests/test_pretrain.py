"""The open-world corpus and the pretraining recipe of the small judges."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from muse.data.openworld import CorpusSpec, generate_corpus
from muse.data.synthetic import Person
from muse.errors import MuseError
from muse.io import sha256
from muse.mllm import losses
from muse.mllm import pretrain as PT

SPEC = CorpusSpec(groups=6, group_size=3, cameras=2, images_per_camera=(1, 2), val_groups=0.34)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("ow") / "corpus"
    generate_corpus(root, SPEC, progress=False)
    return root


def test_corpus_layout_and_pairs_carry_no_camera_shortcut(corpus):
    df = pd.read_csv(corpus / "manifest.csv")
    assert list(df.columns) == ["path", "pid", "camid", "split", "domain"]
    assert set(df.split) == {"train", "val"} and (df.domain == "OW").all()
    assert df.pid.nunique() == SPEC.groups * SPEC.group_size
    assert df.groupby("pid").camid.nunique().eq(SPEC.cameras).all()  # every identity in every camera
    group = df.path.str.extract(r"/(g\d+)/")[0]
    assert df.groupby(group).split.nunique().eq(1).all()  # a group is train or val
    info = df.set_index("path")
    for split in ("train", "val"):
        records = [json.loads(line) for line in (corpus / f"pairs_{split}.jsonl").read_text().splitlines()]
        assert {r["kind"] for r in records} == {"pos", "hard", "easy"}
        for r in records:
            a, b = info.loc[r["query"]], info.loc[r["candidate"]]
            ga, gb = (p.split("/")[-2] for p in (r["query"], r["candidate"]))
            assert a.split == b.split == split
            assert (r["label"] == "Yes") == (a.pid == b.pid) == (r["kind"] == "pos")
            if r["kind"] == "pos":
                assert a.camid != b.camid  # positives span cameras
            elif r["kind"] == "hard":
                assert ga == gb and a.camid == b.camid  # look-alike under the anchor's camera
            else:
                assert ga != gb


def test_look_alikes_share_cues_but_differ(corpus):
    from muse.data.openworld import _group

    people, _ = _group(SPEC, 0)
    first = people[0]
    names = [f for f in Person.__dataclass_fields__]
    for other in people[1:]:
        same = sum(getattr(first, n) == getattr(other, n) for n in names)
        assert 2 <= len(names) - same and same >= 1


def test_corpus_is_deterministic(corpus, tmp_path):
    generate_corpus(tmp_path / "again", SPEC, progress=False)
    for name in ("manifest.csv", "pairs_train.jsonl", "pairs_val.jsonl"):
        a = (corpus / name).read_text().replace(str(corpus), "ROOT")
        b = (tmp_path / "again" / name).read_text().replace(str(tmp_path / "again"), "ROOT")
        assert a == b
    assert sha256(corpus / "images") == sha256(tmp_path / "again" / "images")


def test_corpus_config_errors_name_the_key():
    with pytest.raises(MuseError, match="pretrain.corpus.colour"):
        CorpusSpec.from_config({"colour": 1})
    with pytest.raises(MuseError, match="pretrain.recipe.prompts"):
        PT.PretrainConfig.from_config({"prompts": ["dap", "haiku"]})


def test_contrastive_loss_against_its_formula():
    torch.manual_seed(0)
    e = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    labels = torch.tensor([1, 1, 2, 2, 3, 4])  # ids 3, 4 have no positive: skipped
    T, total = 0.5, []
    for i in range(4):
        others = [j for j in range(6) if j != i]
        denom = sum(torch.exp(e[i] @ e[j] / T) for j in others)
        pos = sum(torch.exp(e[i] @ e[j] / T) for j in others if labels[j] == labels[i])
        total.append(-torch.log(pos / denom))
    assert float(losses.contrastive_loss(e, labels, T)) == pytest.approx(float(torch.stack(total).mean()), rel=1e-5)


SHORT = PT.PretrainConfig(
    size="tiny",
    vision_steps=12,
    vision_groups=2,
    llm_steps=12,
    llm_batch=4,
    pair_steps=12,
    pair_batch=4,
    vision_lr=2e-3,
    llm_lr=2e-3,
    pair_lr=2e-3,
    checkpoint_every=6,
    eval_pairs=16,
)


def test_short_recipe_lowers_the_held_out_loss_and_resumes_after_a_kill(corpus, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from muse.mllm.model import answer_ids, build

    model, processor = build("qwen2_vl", "tiny", SHORT.seed)
    before = PT.held_out_loss(model, processor, answer_ids(processor.tokenizer), PT._Corpus(corpus), SHORT)
    record = PT.pretrain(corpus, tmp_path / "full", SHORT, progress=False)
    after = record["held_out"]["loss"]
    assert after["vision"] < before["vision"] and after["pairs"] < before["pairs"], (before, after)
    assert {"judge_auc", "embedding_auc", "calibration"} <= record["held_out"].keys()
    assert sum(b["pairs"] for b in record["held_out"]["calibration"]) == record["held_out"]["pairs"]
    assert json.loads((tmp_path / "full" / "provenance.json").read_text())["corpus_sha256"] == sha256(corpus)

    real, calls = PT.whole_judge_loss, []

    def dies_at_pair_step_9(*a, **k):
        calls.append(1)
        if len(calls) == 9:  # after the checkpoint at pair step 6
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(PT, "whole_judge_loss", dies_at_pair_step_9)
    with pytest.raises(KeyboardInterrupt):
        PT.pretrain(corpus, tmp_path / "again", SHORT, progress=False)
    assert (tmp_path / "again.ckpt").exists() and not (tmp_path / "again").exists()
    monkeypatch.setattr(PT, "whole_judge_loss", real)
    PT.pretrain(corpus, tmp_path / "again", SHORT, progress=False)
    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "again" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_of_another_recipe_is_not_resumed(corpus, tmp_path, monkeypatch, capsys):
    real, calls = PT.whole_judge_loss, []

    def dies(*a, **k):
        calls.append(1)
        if len(calls) == 9:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(PT, "whole_judge_loss", dies)
    with pytest.raises(KeyboardInterrupt):
        PT.pretrain(corpus, tmp_path / "j", SHORT, progress=False)
    monkeypatch.setattr(PT, "whole_judge_loss", real)
    other = PT.PretrainConfig(**{**SHORT.__dict__, "pair_lr": 1e-3})
    PT.pretrain(corpus, tmp_path / "j", other, progress=False)
    assert "made from other inputs or parameters; starting over" in capsys.readouterr().err
    assert json.loads((tmp_path / "j" / "provenance.json").read_text())["recipe"]["pair_lr"] == 1e-3


def test_calibration_table_by_hand():
    # P(yes) = σ(gap): σ(−3) = 0.047, σ(0) = 0.5, σ(0.1) = 0.525, σ(3) = 0.953, σ(10) = 1.0 (the last bin, closed)
    gap = np.array([-3.0, 0.0, 0.1, 3.0, 10.0])
    same = np.array([False, True, False, True, True])
    table = PT.calibration(gap, same)
    assert [t["bin"] for t in table] == [[0.0, 0.1], [0.5, 0.6], [0.9, 1.0]]
    assert [t["pairs"] for t in table] == [1, 2, 2]
    assert [t["same"] for t in table] == [0.0, 0.5, 1.0]
    assert table[1]["p_yes"] == pytest.approx((0.5 + 1 / (1 + np.exp(-0.1))) / 2, abs=1e-4)
    assert table[2]["p_yes"] == pytest.approx((1 / (1 + np.exp(-3.0)) + 1 / (1 + np.exp(-10.0))) / 2, abs=1e-4)


def test_fit_logistic_maximises_the_balanced_likelihood():
    """At the fit, the gradient of the class-balanced log-likelihood of σ(k·(x − b)) is 0, and a
    small step either way lowers the likelihood."""
    rng = np.random.default_rng(0)
    y = rng.random(3000) < 0.2
    x = np.where(y, rng.normal(0.7, 0.1, 3000), rng.normal(0.4, 0.1, 3000))
    k, b = PT.fit_logistic(x, y)
    w = np.where(y, 0.5 / y.sum(), 0.5 / (~y).sum())

    def loglik(k, b):
        p = 1 / (1 + np.exp(-k * (x - b)))
        return float((w * np.where(y, np.log(p), np.log(1 - p))).sum())

    best = loglik(k, b)
    for dk, db in ((0.05, 0), (-0.05, 0), (0, 1e-3), (0, -1e-3)):
        assert loglik(k + dk, b + db) < best
    # two equal-variance Gaussians: the balanced decision point is their midpoint, the slope Δμ/σ²
    assert b == pytest.approx(0.55, abs=0.01) and k == pytest.approx(30, rel=0.1)


def test_the_teacher_embeds_stored_tokens_as_embed_does_the_images(corpus):
    from muse.mllm.model import answer_ids, build
    from muse.mllm.score import Judge

    model, processor = build("qwen2_vl", "tiny", 0)
    c = PT._Corpus(corpus)
    judge = Judge(model, processor, answer_ids(processor.tokenizer), "dap")
    tokens = PT.visual_tokens(judge, c, progress=False)
    cfg = PT.PretrainConfig(llm_distill=1.0, distill_scale=2.0)
    teacher = PT.Teacher.fit(judge, c, tokens, cfg)
    records = c.pairs[:6]
    with torch.no_grad():
        q = PT.embed(model, processor, [c.images[r["query"]] for r in records])
        g = PT.embed(model, processor, [c.images[r["candidate"]] for r in records])
    torch.testing.assert_close(teacher.cosine(records), (q * g).sum(1), rtol=1e-5, atol=1e-6)
    assert teacher.k == pytest.approx(2 * teacher.k0)
    torch.testing.assert_close(teacher.target(records), teacher.k * ((q * g).sum(1) - teacher.b), rtol=1e-5, atol=1e-5)
    # the distillation term: w · mean squared error of s_yes − s_no against the target
    logits = torch.randn(6, len(processor.tokenizer))
    gap = logits[:, judge.answer[0]] - logits[:, judge.answer[1]]
    expected = float(((gap - teacher.target(records)) ** 2).mean())
    assert float(losses.distillation(logits, judge, records, teacher, 0.5)) == pytest.approx(expected / 2, rel=1e-5)
    assert losses.distillation(logits, judge, records, None, 1.0) == 0.0
    assert losses.distillation(logits, judge, records, teacher, 0.0) == 0.0
    # the Huber loss with δ = 1: r²/2 where |r| ≤ 1, else |r| − 1/2
    r = (gap - teacher.target(records)).abs()
    huber = float(torch.where(r <= 1, r**2 / 2, r - 0.5).mean())
    assert float(losses.distillation(logits, judge, records, teacher, 1.0, "huber")) == pytest.approx(huber, rel=1e-5)


def test_distillation_settings_are_checked():
    with pytest.raises(MuseError, match="distill_loss"):
        PT.PretrainConfig.from_config({"distill_loss": "l1"})
    with pytest.raises(MuseError, match="pair_distill"):
        PT.PretrainConfig.from_config({"pair_distill": -1.0})


@pytest.mark.slow
def test_distillation_makes_the_answer_follow_the_tower(corpus, tmp_path):
    """On the shipped judge's vision tower (frozen: vision_steps 0), a fresh language model trained
    300 steps with distillation answers the training pairs with logit gaps that follow the teacher's
    target t = k·(cos − b): closer in squared error and better correlated than the same run without
    it (the tower, and with it the embedding AUC, is the same in both runs). The held-out answer AUC
    is no test here: on a corpus this small neither run learns a comparison that generalises."""
    from muse.mllm.model import load
    from muse.mllm.score import Judge

    cfg = PT.PretrainConfig(
        size="small", tower="pretrained:qwen2_vl", vision_steps=0, llm_steps=300, llm_batch=16, pair_steps=0,
        checkpoint_every=1000, eval_pairs=300,
    )  # fmt: skip
    off = PT.pretrain(corpus, tmp_path / "off", cfg, progress=False)
    on = PT.pretrain(corpus, tmp_path / "on", replace(cfg, llm_distill=1.0), progress=False)
    assert on["held_out"]["embedding_auc"] == off["held_out"]["embedding_auc"] > 0.85
    c = PT._Corpus(corpus)
    q = [c.images[r["query"]] for r in c.pairs]
    g = [c.images[r["candidate"]] for r in c.pairs]
    fit, agreement = on["distillation"], []
    for run in ("off", "on"):
        model, processor, answer = load(tmp_path / run)
        judge = Judge(model, processor, answer, "dap")
        with torch.no_grad():
            logits = torch.cat([judge.naive(q[s : s + 16], g[s : s + 16]) for s in range(0, len(q), 16)])
            cos = (PT.embed(model, processor, q) * PT.embed(model, processor, g)).sum(1)
        gap, t = (logits[:, 0] - logits[:, 1]).numpy(), (fit["k"] * (cos - fit["b"])).numpy()
        agreement.append((float(((gap - t) ** 2).mean()), float(np.corrcoef(gap, t)[0, 1])))
    (mse_off, r_off), (mse_on, r_on) = agreement
    assert mse_on < 0.6 * mse_off and r_on > r_off + 0.1, agreement


def test_a_tower_of_another_size_is_refused(corpus, tmp_path):
    with pytest.raises(MuseError, match="pretrain.recipe.tower: .* does not fit a qwen2_vl judge of size tiny"):
        PT.pretrain(corpus, tmp_path / "j", replace(SHORT, tower="pretrained:qwen2_vl"), progress=False)
    assert not (tmp_path / "j").exists()


def test_distilled_recipe_records_its_fit_and_resumes_in_the_last_stage(corpus, tmp_path, monkeypatch):
    """With distillation the fit is in provenance.json, and a run killed in stage 3 (the teacher
    rebuilt from the tower on resuming) ends with the weights of an uninterrupted run."""
    from safetensors.torch import load_file

    cfg = PT.PretrainConfig(**{**SHORT.__dict__, "pair_distill": 1.0, "distill_scale": 2.0})
    record = PT.pretrain(corpus, tmp_path / "full", cfg, progress=False)
    fit = record["distillation"]
    assert fit["k"] == pytest.approx(2 * fit["k0"], abs=1e-3) and fit["k0"] != 0
    assert json.loads((tmp_path / "full" / "provenance.json").read_text())["distillation"] == fit
    real, calls = PT.whole_judge_loss, []

    def dies_at_pair_step_9(*a, **k):
        calls.append(1)
        if len(calls) == 9:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(PT, "whole_judge_loss", dies_at_pair_step_9)
    with pytest.raises(KeyboardInterrupt):
        PT.pretrain(corpus, tmp_path / "again", cfg, progress=False)
    monkeypatch.setattr(PT, "whole_judge_loss", real)
    assert PT.pretrain(corpus, tmp_path / "again", cfg, progress=False)["distillation"] == fit
    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "again" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_held_out_metrics_logged_during_training_leave_the_weights_alone(corpus, tmp_path):
    """``eval_every`` logs :func:`held_out` in stages 2 and 3 at its multiples; the weights equal
    those of a run without it."""
    from safetensors.torch import load_file

    base = {**SHORT.__dict__, "vision_steps": 0, "llm_steps": 8, "pair_steps": 4, "checkpoint_every": 4}
    plain = PT.pretrain(corpus, tmp_path / "plain", PT.PretrainConfig(**base), progress=False)
    logged = PT.pretrain(corpus, tmp_path / "logged", PT.PretrainConfig(**{**base, "eval_every": 4}), progress=False)
    evals = [(h["stage"], h["step"]) for h in logged["history"] if "judge_auc" in h]
    assert evals == [("llm", 4), ("llm", 8), ("pairs", 4)]
    assert [h for h in logged["history"] if "judge_auc" not in h] == plain["history"]
    last = [h for h in logged["history"] if "judge_auc" in h][-1]
    assert {k: last[k] for k in ("judge_auc", "embedding_auc")} == {
        k: logged["held_out"][k] for k in ("judge_auc", "embedding_auc")
    }
    a = load_file(tmp_path / "plain" / "model.safetensors")
    b = load_file(tmp_path / "logged" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(MuseError, match="eval_every"):
        PT.PretrainConfig.from_config({"eval_every": -1})


def test_the_language_models_depth_is_a_recipe_setting(corpus, tmp_path):
    """llm_layers builds the small judge's language model at that depth (0: the size's own) and is
    refused below 0."""
    from muse.mllm.model import SIZES, build

    assert build("qwen2_vl", "tiny", 0)[0].config.text_config.num_hidden_layers == SIZES["tiny"][1]
    assert build("qwen2_vl", "tiny", 0, layers=3)[0].config.text_config.num_hidden_layers == 3
    cfg = PT.PretrainConfig(**{**SHORT.__dict__, "llm_layers": 3, "vision_steps": 0, "llm_steps": 2, "pair_steps": 0})
    PT.pretrain(corpus, tmp_path / "deep", cfg, progress=False)
    assert json.loads((tmp_path / "deep" / "config.json").read_text())["text_config"]["num_hidden_layers"] == 3
    with pytest.raises(MuseError, match="pretrain.recipe.llm_layers: must be >= 0"):
        PT.PretrainConfig.from_config({"llm_layers": -1})
