"""A real one-node SLURM cluster on this machine runs a small target through profiles/slurm.

Needs Debian's slurm-wlm and munge (installed by .ci/run); the daemons started here are
stopped at the end. Run with ``python -m pytest -m slurm``.
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers import REPO, copy_workflow

pytestmark = pytest.mark.slurm


def _conf(root, host):
    return f"""ClusterName=muse-test
SlurmctldHost={host}(127.0.0.1)
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/ctld
SlurmdSpoolDir={root}/d
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=8000 State=UNKNOWN
PartitionName=main Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _stop(pidfile):
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text().strip()), 15)
        except (ProcessLookupError, ValueError):
            pass


@pytest.fixture
def cluster(tmp_path):
    for tool in ("slurmctld", "slurmd", "munged", "sbatch"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not installed (apt-get install slurm-wlm munge)")
    root = tmp_path / "slurm"
    for d in ("ctld", "d"):
        (root / d).mkdir(parents=True)
    host = socket.gethostname().split(".")[0]
    conf = Path("/etc/slurm/slurm.conf")  # jobs' own srun calls read the default path
    conf.parent.mkdir(parents=True, exist_ok=True)
    backup = conf.read_text() if conf.exists() else None
    conf.write_text(_conf(root, host))
    env = dict(os.environ)
    started_munge = subprocess.run(["munge", "-n"], capture_output=True).returncode != 0
    if started_munge:
        if not os.path.exists("/etc/munge/munge.key"):
            subprocess.run(["mungekey", "--create"], check=True)
        os.makedirs("/run/munge", exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        shutil.chown("/etc/munge/munge.key", "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", "munged", "--force"], check=True)
    subprocess.run(["slurmctld"], env=env, check=True)
    subprocess.run(["slurmd"], env=env, check=True)
    try:
        for _ in range(60):
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout
            if out.strip() == "idle":
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the test cluster did not come up: sinfo says {out!r}")
        yield env
    finally:
        _stop(root / "slurmd.pid")
        _stop(root / "slurmctld.pid")
        if started_munge:
            _stop(Path("/run/munge/munged.pid"))
        if backup is None:
            conf.unlink()
        else:
            conf.write_text(backup)


def test_small_target_through_the_slurm_profile(cluster, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    copy_workflow(work, small_world=True)
    targets = ["results/data/MA.csv", "results/data/C3.csv"]
    res = subprocess.run(
        [
            "snakemake",
            *targets,
            "--profile",
            str(REPO / "profiles" / "slurm"),
            "--jobs",
            "2",
            "--slurm-no-account",
            "--slurm-init-seconds-before-status-checks",
            "1",
            "--slurm-status-command",
            "squeue",
            "--default-resources",
            "slurm_partition=main",
            "mem_mb=1000",
            "runtime=10",
            "cpus_per_task=1",
        ],
        cwd=work,
        env=cluster,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    for t in targets:
        df = pd.read_csv(work / t)
        assert (df.split == "train").any() and (df.split == "query").any()
    log = (tmp_path / "slurm" / "slurmctld.log").read_text()
    assert "_job_complete" in log  # jobs really ran through slurmctld
    # the four jobs (synth_world and manifest of two domains) are the data group: one submission
    assert log.count("_slurm_rpc_submit_batch_job") == 1, log
