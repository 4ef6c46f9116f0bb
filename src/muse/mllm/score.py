"""μ-scoring: the MLLM's "Yes"/"No" logits for each query and its top-C gallery candidates.

For a pair (query, candidate) the judge reads the prompt of :mod:`muse.mllm.prompt` and the logits
s_yes, s_no of the tokens "Yes" and "No" at the answer position are stored (the scores file of
docs/architecture.md, "Artefact formats"), so that τ, α, C and the re-ranking can change later
without another MLLM call.

Two engines give the same logits:

- ``naive``: one full forward per pair (batches of ``batch`` pairs);
- ``cached``: every image's visual tokens are computed once; the KV cache of the shared prefix
  (system prompt, task text, query image, " Candidate:") is computed once per query and reused
  for all its candidates; the suffixes (candidate image, rules, response format, answer prompt)
  run in batches with explicit M-RoPE position ids. At a fixed resolution every pair has the same
  token layout, so positions are computed once and no padding is needed.

With ``swap`` each logit is the mean of the pair scored as (query, candidate) and as (candidate,
query).

``logits``: ``raw`` (default) stores the model's logits; ``generate`` stores them as MUSE's release
reads them, ``generate(...).scores[0]`` with greedy decoding, i.e. after the checkpoint's
repetition penalty θ (``generation_config.repetition_penalty``): the logit of an answer token that
occurs in the prompt is divided by θ when positive and multiplied by θ otherwise.
"""

from __future__ import annotations

import copy
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from muse.distance import Distance
from muse.errors import MuseError
from muse.io import Features, Scores, digest, file_output, files_digest, load_scores, one_writer, resumable, save_scores
from muse.mllm.prompt import IMAGE_SIZE, PairImages, messages

ENGINES = ("cached", "naive")
LOGITS = ("raw", "generate")


class Judge:
    """A loaded MLLM with the token layout of one prompt variant."""

    def __init__(
        self,
        model,
        processor,
        answer_ids: tuple[int, int],
        variant: str = "dap",
        logits: str = "raw",
        source: str | None = None,
    ):
        """``source``: the identity of the model and adapter files (:func:`load_judge`); without
        it, the digest of the weights stands in when a fingerprint is needed."""
        if logits not in LOGITS:
            raise MuseError(f"unknown logits '{logits}': expected one of {', '.join(LOGITS)}")
        self.model, self.processor, self.answer = model, processor, list(answer_ids)
        self._source = source
        self.dev = next(model.parameters()).device
        self.text = processor.apply_chat_template(messages(variant), add_generation_prompt=True, tokenize=False)
        blank = Image.new("RGB", IMAGE_SIZE[::-1])
        enc = processor(text=[self.text], images=[blank, blank], return_tensors="pt")
        self.input_ids = enc["input_ids"].to(self.dev)
        self.positions, _ = model.model.get_rope_index(
            input_ids=self.input_ids,
            mm_token_type_ids=enc["mm_token_type_ids"].to(self.dev),
            image_grid_thw=enc["image_grid_thw"].to(self.dev),
        )
        image_pos = (self.input_ids[0] == model.config.image_token_id).nonzero(as_tuple=True)[0]
        n = len(image_pos) // 2
        self.query_pos, self.cand_pos = image_pos[:n], image_pos[n:]
        self.P = int(self.cand_pos[0])  # prefix: everything before the candidate
        self.embeddings = model.get_input_embeddings()(self.input_ids)
        theta = (model.generation_config.repetition_penalty or 1.0) if logits == "generate" else 1.0
        self.theta = torch.tensor([theta if (self.input_ids == a).any() else 1.0 for a in self.answer], device=self.dev)

    @property
    def source(self) -> str:
        if self._source is None:
            self._source = digest(*(t.detach().float().cpu().numpy() for t in self.model.state_dict().values()))
        return self._source

    def fingerprint(self) -> str:
        """What the logits depend on besides the pairs: weights, prompt and the logits' form."""
        return digest(self.source, self.text, self.theta.tolist())

    def stored(self, s: torch.Tensor) -> torch.Tensor:
        """(B, 2) [s_yes, s_no] as stored: the raw logits, or after the repetition penalty."""
        return torch.where(s > 0, s / self.theta, s * self.theta)

    # -- engines --------------------------------------------------------------------------
    def answer_logits(self, firsts: list[Image.Image], seconds: list[Image.Image]) -> torch.Tensor:
        """(B, V) logits at the answer position of the pairs (firsts[k], seconds[k]), one full
        forward of the whole prompt each (with gradients, for fine-tuning)."""
        images = [im for pair in zip(firsts, seconds) for im in pair]
        enc = self.processor(text=[self.text] * len(firsts), images=images, return_tensors="pt").to(self.dev)
        return self.model(**enc, logits_to_keep=1).logits[:, -1].float()

    def logits_from_tokens(self, firsts: torch.Tensor, seconds: torch.Tensor) -> torch.Tensor:
        """(B, V) logits at the answer position of pairs given as visual tokens (B, T, H) each: one
        forward of the whole prompt with the tokens in place and explicit M-RoPE positions, equal to
        :meth:`answer_logits` on the images (with gradients, for pretraining the language model)."""
        b = len(firsts)
        emb = self.model.get_input_embeddings()(self.input_ids).expand(b, -1, -1).clone()
        emb[:, self.query_pos] = firsts.to(emb.dtype)
        emb[:, self.cand_pos] = seconds.to(emb.dtype)
        out = self.model(inputs_embeds=emb, position_ids=self.positions.expand(-1, b, -1), logits_to_keep=1)
        return out.logits[:, -1].float()

    @torch.no_grad()
    def naive(self, firsts: list[Image.Image], seconds: list[Image.Image]) -> torch.Tensor:
        """(B, 2) logits [s_yes, s_no] of the pairs (firsts[k], seconds[k]), full forwards."""
        return self.stored(self.answer_logits(firsts, seconds)[:, self.answer])

    @torch.no_grad()
    def visual(self, images: list[Image.Image]) -> torch.Tensor:
        """(n, T, H) visual tokens of each image, as the language model receives them."""
        pv = self.processor.image_processor(images=images, return_tensors="pt")
        out = self.model.model.get_image_features(pv["pixel_values"].to(self.dev), pv["image_grid_thw"].to(self.dev))
        return torch.stack(out.pooler_output)

    @torch.no_grad()
    def prefix(self, first: torch.Tensor):
        """KV cache of the prompt up to the second image, with ``first`` (T, H) as the first image."""
        emb = self.embeddings[:, : self.P].clone()
        emb[0, self.query_pos] = first.to(emb.dtype)
        out = self.model.model(inputs_embeds=emb, position_ids=self.positions[:, :, : self.P], use_cache=True)
        return out.cache

    @torch.no_grad()
    def suffix(self, cache, seconds: torch.Tensor) -> torch.Tensor:
        """(b, 2) logits of the prefix ``cache`` continued with each of ``seconds`` (b, T, H)."""
        b = len(seconds)
        emb = self.embeddings[:, self.P :].expand(b, -1, -1).clone()
        emb[:, self.cand_pos - self.P] = seconds.to(emb.dtype)
        cache = copy.deepcopy(cache)
        cache.batch_repeat_interleave(b)
        pos = self.positions[:, :, self.P :].expand(-1, b, -1)
        out = self.model(inputs_embeds=emb, position_ids=pos, cache=cache, use_cache=True, logits_to_keep=1)
        return self.stored(out.logits[:, -1, self.answer].float())


def load_judge(model_dir, adapter=None, variant: str = "dap", logits: str = "raw") -> Judge:
    """The judge of a local model directory and optional LoRA adapter (merged), its ``source``
    the cheap identity (:func:`muse.io.files_digest`) of both."""
    from muse.mllm.model import load

    return Judge(
        *load(model_dir, adapter),
        variant=variant,
        logits=logits,
        source=digest(files_digest(model_dir), files_digest(adapter)),
    )


def _scores_for(judge: Judge, engine: str, groups, images, feats: dict, batch: int, bar) -> dict:
    """Logits of pairs grouped by their first image: ``groups`` maps a first image path to the
    list of second image paths; returns {(first, second): (s_yes, s_no)}. The cached engine
    fills ``feats`` (path → visual tokens) with the images it has not seen yet."""
    out = {}
    if engine == "cached":
        needed = sorted({p for f, ss in groups.items() for p in (f, *ss)} - feats.keys())
        for s in range(0, len(needed), batch):
            chunk = needed[s : s + batch]
            for p, v in zip(chunk, judge.visual([images[p] for p in chunk])):
                feats[p] = v
    for first, seconds in groups.items():
        cache = judge.prefix(feats[first]) if engine == "cached" else None
        for s in range(0, len(seconds), batch):
            chunk = seconds[s : s + batch]
            if engine == "cached":
                logits = judge.suffix(cache, torch.stack([feats[p] for p in chunk]))
            else:
                logits = judge.naive([images[first]] * len(chunk), [images[p] for p in chunk])
            for p, row in zip(chunk, logits.cpu().numpy()):
                out[first, p] = row
            bar.update(len(chunk))
    return out


def score_queries(
    judge: Judge,
    q_paths,
    g_paths,
    cand: np.ndarray,
    engine: str = "cached",
    batch: int = 8,
    swap: bool = False,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(s_yes, s_no), each (Q, C), for queries ``q_paths`` and candidates ``g_paths[cand]``."""
    if engine not in ENGINES:
        raise MuseError(f"unknown scoring engine '{engine}': expected one of {', '.join(ENGINES)}")
    images, feats = PairImages(), {}
    pairs = [(q_paths[i], g_paths[j]) for i in range(len(cand)) for j in cand[i]]
    directions = [pairs] + ([[(c, q) for q, c in pairs]] if swap else [])
    bar = tqdm(total=len(pairs) * len(directions), desc=f"scoring ({engine})", unit="pair", disable=not progress)
    t0 = time.perf_counter()
    results = []
    for direction in directions:
        groups: dict[str, list[str]] = {}
        for first, second in direction:
            groups.setdefault(first, []).append(second)
        groups = {f: sorted(set(ss)) for f, ss in groups.items()}
        results.append(_scores_for(judge, engine, groups, images, feats, batch, bar))
    bar.close()
    logits = np.stack(
        [np.mean([results[d][(pair if d == 0 else pair[::-1])] for d in range(len(directions))], 0) for pair in pairs]
    ).reshape(*cand.shape, 2)
    rate = len(pairs) * len(directions) / max(time.perf_counter() - t0, 1e-9)
    print(f"scored {len(pairs)} pairs ({engine}, swap={swap}): {rate:.1f} pairs/s", file=sys.stderr)
    return logits[..., 0].astype(np.float32), logits[..., 1].astype(np.float32)


def shard_rows(Q: int, shard: str) -> slice:
    """The query rows of shard ``i/n`` (n nearly equal consecutive ranges)."""
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise MuseError(f"--shard {shard!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= i < n:
        raise MuseError(f"--shard {shard}: expected 0 <= i < n")
    bounds = np.linspace(0, Q, n + 1).round().astype(int)
    return slice(int(bounds[i]), int(bounds[i + 1]))


@one_writer
def score_file(
    judge: Judge,
    q_paths,
    g_paths,
    cand: np.ndarray,
    out,
    rows: slice,
    engine: str = "cached",
    batch: int = 8,
    swap: bool = False,
    chunk: int = 64,
    progress: bool = True,
    features: str | None = None,
    offset: int = 0,
) -> Scores:
    """Score the query ``rows`` and write them to ``out``, recording the rows (shifted by
    ``offset``, the index of ``q_paths[0]`` among the test set's queries) and the ``features``
    fingerprint. Finished chunks of ``chunk`` queries are kept in ``<out>.parts/`` with the
    fingerprint of the judge and the pairs, so that a killed run resumes where it stopped, and a
    run with anything else changed starts over; ``<out>.lock`` refuses a second writer."""
    if batch < 1:
        raise MuseError(f"--batch {batch}: expected a positive number of pairs per forward")
    out = file_output(out)
    parts = Path(f"{out}.parts")
    fingerprint = digest(
        judge.fingerprint(), np.asarray(q_paths), np.asarray(g_paths), cand, rows.start, rows.stop, engine, swap, chunk
    )
    stamp = parts / "fingerprint"
    if parts.exists() and not resumable(parts, stamp.read_text() if stamp.is_file() else None, fingerprint):
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint)
    done = len(list(parts.glob("*-*.npz")))
    if done:
        print(f"resuming {out}: {done} of {math.ceil((rows.stop - rows.start) / chunk)} chunks scored", file=sys.stderr)
    pieces = []
    for start in range(rows.start, rows.stop, chunk):
        stop = min(start + chunk, rows.stop)
        part = parts / f"{start:08d}-{stop:08d}.npz"
        if part.exists():
            pieces.append(load_scores(part, stop - start, len(g_paths)))
            continue
        sy, sn = score_queries(judge, q_paths[start:stop], g_paths, cand[start:stop], engine, batch, swap, progress)
        pieces.append(Scores(cand[start:stop], sy, sn))
        save_scores(part, pieces[-1])
    merged = Scores.concat(pieces, rows=(offset + rows.start, offset + rows.stop), features=features)
    save_scores(out, merged)
    shutil.rmtree(parts)
    return merged


def shard_candidates(features: Features, C: int, shard: str) -> tuple[slice, np.ndarray]:
    """(the query rows of shard ``shard`` (i/n), their top-``C`` gallery candidates by the base
    distance); an empty shard or C beyond the gallery is refused."""
    q, g = features.query_gallery()
    rows = shard_rows(len(q.pids), shard)
    if rows.stop == rows.start:
        raise MuseError(f"--shard {shard}: no queries in this shard of {len(q.pids)}; use fewer shards")
    return rows, Distance(q.feats[rows], g.feats).top_candidates(C)  # this shard's queries only


def score_features(
    judge: Judge,
    features: Features,
    C: int,
    out,
    shard: str = "0/1",
    engine: str = "cached",
    batch: int = 8,
    swap: bool = False,
    candidates: tuple[slice, np.ndarray] | None = None,
) -> slice:
    """Score shard ``shard`` (i/n) of a test set's queries against their top-``C`` gallery
    candidates by the base distance (``candidates``: :func:`shard_candidates` of these arguments,
    when already computed), into ``out`` (with its query rows and the features' fingerprint);
    returns the shard's query rows."""
    q, g = features.query_gallery()
    rows, cand = candidates or shard_candidates(features, C, shard)
    score_file(
        judge,
        q.paths[rows],
        g.paths,
        cand,
        out,
        slice(0, len(cand)),
        engine,
        batch,
        swap,
        features=features.fingerprint,
        offset=rows.start,
    )
    return rows


def merge_shards(shards, out, features: Features) -> Scores:
    """One scores file covering all queries of ``features`` from shard files, in the order of
    their query rows; shards of other features, gaps and overlaps are errors."""
    Q, G = features.test_sizes
    fp = features.fingerprint
    pieces = []
    for path in shards:
        s = load_scores(path, None, G)
        if s.rows is None or s.features != fp:
            raise MuseError(
                f"{path}: not a shard of these features (scored on another features file, or "
                "written without its query rows)"
            )
        if s.rows[1] - s.rows[0] != len(s.cand):
            raise MuseError(f"{path}: holds {len(s.cand)} queries but says rows {s.rows[0]}..{s.rows[1] - 1}")
        pieces.append((s.rows, path, s))
    pieces.sort(key=lambda x: x[0])
    end = 0
    for (start, stop), path, _ in pieces:
        if start != end:
            what = "overlaps the shard before it" if start < end else f"leaves queries {end}..{start - 1} unscored"
            raise MuseError(f"{path}: rows {start}..{stop - 1} {what}")
        end = stop
    if end != Q:
        raise MuseError(f"shards cover {end} queries, expected {Q}")
    merged = Scores.concat([s for *_, s in pieces], rows=(0, Q), features=fp)
    save_scores(out, merged)
    return merged
