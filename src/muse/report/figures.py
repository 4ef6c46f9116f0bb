"""Figures 3 (parameter sweeps), 4 (MLLM time split and token mix) and 5 (rankings)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from muse.io import atomic_path  # noqa: E402


def _save(fig, out) -> None:
    """Write ``fig`` as PNG atomically and free it."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


LABELS = {"C": "number of candidates C", "alpha": "fusion weight α", "tau": "temperature τ"}


def plot_sweep(rows: list[dict], param: str, out, title: str) -> None:
    """mAP and R1 (%) against the swept parameter, as Figure 3, each with its interval as a band
    (the rows' ``ci``, :func:`muse.intervals.annotate`), and the mAP of a perfect judge at each
    value (the rows' ``ceiling``)."""
    x = [r["value"] for r in rows]
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    for metric, style, label in (("mAP", "o-", "mAP"), ("R1", "s--", "R1"), ("ceiling", "^:", "mAP, perfect judge")):
        (line,) = ax.plot(x, [100 * r[metric] for r in rows], style, label=label)
        if metric in rows[0].get("ci", {}):
            low, high = ([100 * r["ci"][metric][end] for r in rows] for end in (0, 1))
            band = "bootstrap interval" if metric == "mAP" else None  # one legend entry for both bands
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, lw=0, label=band)
    ax.set_xlabel(LABELS.get(param, param))
    ax.set_ylabel("%")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out)


def plot_timing(bench: dict, out) -> None:
    """Figure 4: one pair's time in the vision encoder vs the LLM decoder (mean ± standard
    deviation over the timed pairs), and its tokens: vision, the prompt's text before the
    candidate image (shared by a query's candidates) and the text from the candidate on."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(7, 3), dpi=120)
    parts = ("vision_encoder", "llm_decoder")
    a.bar(
        ["vision encoder", "LLM decoder"],
        [bench["one_pair_ms"][p] for p in parts],
        yerr=[bench["one_pair_ms_std"][p] for p in parts],
        capsize=4,
        color=["#4c72b0", "#dd8452"],
    )
    a.set_ylabel("ms per pair")
    a.set_title(f"time per component (mean ± std, {bench['timed_pairs']} pairs)", fontsize=9)
    tok = bench["tokens"]
    b.pie(
        [tok["vision"], tok["prompt_text"], tok["suffix_text"]],
        labels=[
            f"vision {tok['vision']}",
            f"prompt text {tok['prompt_text']}",
            f"candidate suffix {tok['suffix_text']}",
        ],
        colors=["#4c72b0", "#dd8452", "#55a868"],
        autopct="%1.0f%%",
    )
    b.set_title("tokens per pair", fontsize=9)
    fig.suptitle(f"{bench['machine']}", fontsize=7)
    fig.tight_layout()
    _save(fig, out)


CAPTION_H = 16  # pixels of a panel's caption line


def ranking_figure(panels: list[dict], titles: tuple[str, str], out, size=(96, 48)) -> None:
    """Figure 5: for each query of ``panels`` (:func:`muse.experiments.rankings`), a caption with
    the rank of its first true match before and after MUSE, then one row per ranking (``titles``:
    without and with MUSE) of the query (outlined in blue) and its top gallery images, true matches
    outlined in green and false ones in red."""
    from PIL import Image, ImageDraw

    h, w = size
    pad, label_w = 4, 150
    row_h = h + 2 * pad
    k = max(len(r) for p in panels for r in p["rows"])
    heights = [CAPTION_H + len(p["rows"]) * row_h for p in panels]
    canvas = Image.new("RGB", (label_w + (k + 1) * (w + pad) + pad, sum(heights)), "white")
    draw = ImageDraw.Draw(canvas)
    top = 0
    for panel, height in zip(panels, heights):
        before, after = (f + 1 for f in panel["first"])
        draw.text((pad, top + 2), f"first true match: rank {before} -> {after}", fill="black")
        query = Image.open(panel["query"]).convert("RGB").resize((w, h))
        for row, (title, items) in enumerate(zip(titles, panel["rows"])):
            y = top + CAPTION_H + row * row_h + pad
            draw.text((pad, y + h // 2 - 6), title, fill="black")
            canvas.paste(query, (label_w, y))
            draw.rectangle([label_w - 2, y - 2, label_w + w + 1, y + h + 1], outline="blue", width=2)
            for j, (path, match) in enumerate(items):
                x = label_w + (j + 1) * (w + pad) + pad
                canvas.paste(Image.open(path).convert("RGB").resize((w, h)), (x, y))
                draw.rectangle([x - 2, y - 2, x + w + 1, y + h + 1], outline="green" if match else "red", width=2)
        top += height
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="png")
