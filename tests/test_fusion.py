"""muse.fusion.Fusion: validated when made and when changed, applied as Distance.fuse."""

import numpy as np
import pytest
import torch

from muse.distance import Distance
from muse.errors import MuseError
from muse.fusion import Fusion
from muse.io import Scores

from helpers import clustered, scores_for


def test_settings_are_refused_in_one_line_naming_the_scores_file():
    s = Scores(np.zeros((3, 4), np.int64), np.zeros((3, 4)), np.zeros((3, 4)), source="s.npz")
    for bad, message in [
        ({"alpha": 1.5}, "s.npz: alpha = 1.5: expected a value in [0, 1]"),
        ({"tau": 0.0}, "s.npz: tau = 0.0: expected a positive temperature"),
        ({"C": 5}, "s.npz: C = 5: expected 1 <= C <= 4 (the candidates stored in the scores file)"),
    ]:
        with pytest.raises(MuseError) as e:
            Fusion(s, **{"alpha": 0.2, "tau": 5.0, "C": 4, **bad})
        assert str(e.value) == message
    fusion = Fusion(s, 0.2, 5.0, 4)
    assert fusion.settings() == {"alpha": 0.2, "tau": 5.0, "C": 4}
    with pytest.raises(MuseError, match="C = 0"):
        fusion.with_(C=0)
    assert fusion.with_(alpha=0.5).alpha == 0.5 and fusion.alpha == 0.2


def test_apply_is_distance_fuse_and_checks_the_gallery():
    q, g, *_ = clustered(3)
    cand, sy, sn = scores_for(q, g, 8, 3)
    fused = Fusion(Scores(cand, sy, sn), 0.3, 2.0, 8).apply(Distance(q, g, dtype=torch.float64))
    direct = Distance(q, g, dtype=torch.float64).fuse(cand, sy, sn, 0.3, 2.0, 8)
    assert torch.equal(fused.block(slice(0, fused.N)), direct.block(slice(0, direct.N)))
    small = Distance(q, g[:5], dtype=torch.float64)
    with pytest.raises(MuseError, match=r"^t.npz: C = 8 is larger than the gallery \(5 images\)$"):
        Fusion(Scores(cand % 5, sy, sn, source="t.npz"), 0.3, 2.0, 8).apply(small)
