"""μ-fusion's inputs as one value: the judge's pair scores and the settings α, τ, C of eq. 6.

With s_yes, s_no the judge's logits for a query q and one of its first C candidates g (by the
base distance d), p_no = softmax([s_yes, s_no] / τ)[no] and the fused distance is
d_μ(q, g) = (1 − α)·d(q, g) + α·p_no (:func:`muse.distance.mu_fuse`); the other pairs keep d.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from muse.distance import Distance, check_fusion
from muse.errors import MuseError
from muse.io import Scores

SETTINGS = ("alpha", "tau", "C")


@dataclass(frozen=True)
class Fusion:
    """The scores (a scores file's candidates and logits) and α ∈ [0, 1], τ > 0 and
    1 ≤ C ≤ the candidates stored, validated when made; C against the gallery when applied."""

    scores: Scores
    alpha: float
    tau: float
    C: int

    def __post_init__(self):
        try:
            check_fusion(self.alpha, self.tau, self.C, self.scores.width)
        except MuseError as e:
            raise self._named(e) from None

    def with_(self, **changes) -> Fusion:
        """This fusion with some of its fields replaced (validated again)."""
        return replace(self, **changes)

    def settings(self) -> dict:
        """{"alpha", "tau", "C"} as the evaluation's rows record them."""
        return {k: getattr(self, k) for k in SETTINGS}

    def apply(self, D: Distance) -> Distance:
        """``D`` with each query's first C candidates fused (:meth:`muse.distance.Distance.fuse`)."""
        s = self.scores
        try:
            return D.fuse(s.cand, s.s_yes, s.s_no, self.alpha, self.tau, self.C)
        except MuseError as e:
            raise self._named(e) from None

    def _named(self, e: MuseError) -> MuseError:
        return MuseError(f"{self.scores.source}: {e}" if self.scores.source else str(e))
