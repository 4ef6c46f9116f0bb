"""Artefact I/O: atomic replacement of files and directories under kills, digests."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from muse.io import atomic_path, digest, files_digest

WRITER = """
import os, shutil, sys
from pathlib import Path
from muse.io import atomic_path
out, n, stage = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if stage == "deleting":          # killed half-way through removing a directory
    def dying(p, *a, **k):
        files = sorted(f for f in Path(p).rglob("*") if f.is_file())
        for f in files[:len(files) // 2]:
            f.unlink()
        os.kill(os.getpid(), 9)
    shutil.rmtree = dying
with atomic_path(out) as tmp:
    tmp.mkdir()
    for i in range(n):
        (tmp / f"{i:05d}").write_text("new")
        if stage == "writing" and i == n // 2:
            os.kill(os.getpid(), 9)
    if stage == "before-swap":
        os.kill(os.getpid(), 9)
if stage == "after-swap":
    os.kill(os.getpid(), 9)
"""


def _old(path, n):
    path.mkdir()
    for i in range(n):
        (path / f"{i:05d}").write_text("old")


@pytest.mark.parametrize("stage", ["writing", "before-swap", "deleting", "after-swap", "none"])
def test_directory_replacement_is_whole_old_or_whole_new(tmp_path, stage):
    """A writer killed at any step leaves the whole old directory or the whole new one at the
    path, never a mixture or nothing."""
    out = tmp_path / "artefact"
    _old(out, 2000)
    res = subprocess.run([sys.executable, "-c", WRITER, str(out), "3000", stage], capture_output=True, text=True)
    assert res.returncode == (0 if stage == "none" else -signal.SIGKILL), res.stderr
    contents = {p.read_text() for p in out.iterdir()}
    n = len(list(out.iterdir()))
    if stage in ("writing", "before-swap"):
        assert contents == {"old"} and n == 2000
    else:
        assert contents == {"new"} and n == 3000
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "artefact"]
    assert all(name.startswith(".artefact.") and name.endswith(".tmp") for name in leftovers)


def test_failed_block_keeps_the_old_file(tmp_path):
    out = tmp_path / "f.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert out.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_digests(tmp_path):
    assert digest(np.array(["a", "b"])) == digest(np.array(["a", "b"], dtype=object)) != digest(np.array(["ab"]))
    assert digest(np.arange(3)) != digest(np.arange(3.0)) and digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1})
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w").write_text("1")
    before = files_digest(tmp_path / "m")
    (tmp_path / "m" / "w").write_text("22")
    assert files_digest(tmp_path / "m") != before and files_digest(None) is None


@pytest.mark.parametrize(
    "feats, what", [(np.zeros((4, 3)), "4 of 4 rows are all zero"), (np.ones((4, 3)), "all rows are equal")]
)
def test_degenerate_features_warn(tmp_path, capsys, feats, what):
    from muse.io import Features, load_features, save_features

    save_features(
        tmp_path / "f.npz",
        Features(
            feats.astype(np.float32),
            np.arange(4),
            np.arange(4),
            np.array(list("abcd")),
            np.array(["query", "gallery"] * 2),
        ),
    )
    load_features(tmp_path / "f.npz")
    assert f"'feats' is degenerate ({what})" in capsys.readouterr().err


def test_directory_replacement_without_atomic_exchange(tmp_path, monkeypatch):
    """Where renameat2 cannot exchange (EINVAL), the old directory is renamed aside instead."""
    import ctypes
    import errno

    class NoExchange:
        def renameat2(self, *args):
            ctypes.set_errno(errno.EINVAL)
            return -1

    real = ctypes.CDLL
    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: NoExchange() if a[:1] == (None,) else real(*a, **k))
    out = tmp_path / "artefact"
    _old(out, 3)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new"] and os.listdir(tmp_path) == ["artefact"]


def test_one_writer_per_output_rank_zero_holds_the_lock(tmp_path, monkeypatch):
    """A second writer of the same output is refused; the other ranks of one launch share rank 0's lock."""
    from muse.errors import MuseError
    from muse.io import exclusive, one_writer

    @one_writer
    def write(text, out):
        out.write_text(text)

    lock = tmp_path / "o.txt.lock"
    with exclusive(lock):
        with pytest.raises(MuseError, match="o.txt.lock: another process is writing this output"):
            write("x", out=tmp_path / "o.txt")
        monkeypatch.setenv("RANK", "1")
        write("from rank 1", tmp_path / "o.txt")
    assert (tmp_path / "o.txt").read_text() == "from rank 1" and not lock.exists()


def test_a_workflow_job_leaves_no_sidecar_without_its_output(tmp_path, capsys):
    """``logged``: a failing or interrupted job removes its outputs' sidecars (the workflow manager
    deletes the outputs); a starting job removes a sidecar whose output is gone; success keeps it."""
    from muse.errors import MuseError, logged

    out, orphan, log = tmp_path / "a.csv", tmp_path / "gone.csv", tmp_path / "job.log"
    meta, orphan_meta = tmp_path / "a.csv.meta.json", tmp_path / "gone.csv.meta.json"
    out.write_text("x\n")
    meta.write_text("{}")
    orphan_meta.write_text("{}")
    with logged(log, [str(out), str(orphan)]):
        assert not orphan_meta.exists() and meta.exists()  # removed at the start: its output is gone
    assert meta.exists()
    with pytest.raises(SystemExit) as e, logged(log, [str(out)]):
        raise MuseError("a.csv: broken")
    assert e.value.code == 1 and not meta.exists() and "muse: error: a.csv: broken" in capsys.readouterr().err
    meta.write_text("{}")
    with pytest.raises(KeyboardInterrupt), logged(log, [str(out)]):
        raise KeyboardInterrupt
    assert not meta.exists() and out.exists()  # the output itself is the workflow manager's to delete


def test_a_full_disk_or_an_unwritable_folder_is_one_line_naming_the_output(tmp_path, monkeypatch):
    import errno
    import shutil
    import tempfile

    from muse.errors import MuseError

    with pytest.raises(MuseError, match=r"x\.npz: no space left on device"), atomic_path(tmp_path / "x.npz") as t:
        t.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    real = shutil.disk_usage  # a writer that hides the errno (torch: "failed writing file"), on a full disk
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=0))
    with pytest.raises(MuseError, match=r"y\.pt: no space left on device"), atomic_path(tmp_path / "y.pt"):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0")
    monkeypatch.setattr(shutil, "disk_usage", real)
    with pytest.raises(RuntimeError, match="a bug"), atomic_path(tmp_path / "z.pt"):  # other errors pass
        raise RuntimeError("a bug")

    def refused(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", refused)
    with pytest.raises(MuseError, match="not writable"), atomic_path(tmp_path / "ro" / "w.csv"):
        pass


def test_a_full_disk_met_outside_an_atomic_write_is_one_line(tmp_path, capsys, monkeypatch):
    import errno

    from muse import cli, stages
    from muse.errors import logged

    with pytest.raises(SystemExit), logged(tmp_path / "job.log"):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "s.npz.parts" / "fingerprint"))
    assert (
        "muse: error: " + str(tmp_path / "s.npz.parts" / "fingerprint") + ": no space left" in capsys.readouterr().err
    )

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "results/pairs/MA_qchm.jsonl")

    monkeypatch.setattr(stages, "mine", full)
    features = tmp_path / "f.npz"
    features.write_bytes(b"")
    assert cli.main(["mine", "--features", str(features), "--out", str(tmp_path / "p.jsonl")]) == 2
    assert capsys.readouterr().err.strip() == "muse: error: results/pairs/MA_qchm.jsonl: no space left on device"
