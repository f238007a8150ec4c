"""Real file-system faults for the tests: a full disk, a read-only file system, a directory one may not write.

Each fault is made for real, in a child process, never simulated:

* a full disk is a tiny tmpfs mounted in a private mount namespace (``unshare --mount``), so writes fail with
  ENOSPC; the mount disappears with the process;
* a read-only file system is the same tmpfs remounted read-only (EROFS);
* a permission error is a directory without write permission (EACCES). Root ignores permissions, so when the
  tests run as root the child drops to the ``nobody`` user with ``setpriv`` first.

When the machine cannot do one of these (no ``unshare``, no CAP_SYS_ADMIN, no ``setpriv``), the test is skipped
and says why.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534


@functools.cache
def _mount_problem() -> str | None:
    """Why a tmpfs cannot be mounted in a private namespace here, or None if it can."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    with tempfile.TemporaryDirectory() as tmp:
        probe = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", tmp],
            capture_output=True, text=True, check=False,
        )
    if probe.returncode != 0:
        return f"cannot mount a tmpfs in a private mount namespace here ({probe.stderr.strip() or probe.returncode})"
    return None


def needs_tmpfs() -> None:
    problem = _mount_problem()
    if problem:
        pytest.skip(f"a real full or read-only disk needs a tmpfs: {problem}")


@functools.cache
def _unprivileged_problem() -> str | None:
    """Why a child process cannot run this checkout's clio_lite as an unprivileged user, or None if it can."""
    if os.geteuid() != 0:
        return None  # already unprivileged: permissions block writes as they are
    if shutil.which("setpriv") is None:
        return "running as root, where permissions do not block writes, and setpriv is missing to drop them"
    probe = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", sys.executable, "-c",
         "import clio_lite.release"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd="/", check=False,
    )
    if probe.returncode != 0:
        return f"the nobody user cannot run this checkout's Python ({probe.stderr.strip().splitlines()[-1:]})"
    return None


def needs_unprivileged_user() -> None:
    problem = _unprivileged_problem()
    if problem:
        pytest.skip(f"a real permission error needs an unprivileged user: {problem}")


def shared_tempdir() -> Path:
    """A temporary directory the unprivileged child can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="clio-faults-"))
    path.chmod(0o755)
    return path


def run_python(
    code: str,
    *args: str,
    tmpfs: Path | None = None,
    tmpfs_size: str = "64k",
    setup: str | None = None,
    read_only: bool = False,
    unprivileged: bool = False,
) -> dict[str, Any]:
    """Run ``code`` in a child Python (this checkout's clio_lite first on the path); return the JSON it prints last.

    ``tmpfs`` mounts a tmpfs of ``tmpfs_size`` there first (in a private namespace); ``setup`` is Python run in
    that mount before it is made read-only (``read_only``); ``unprivileged`` runs ``code`` as ``nobody`` when the
    tests run as root.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-c", code, *args]
    if unprivileged and os.geteuid() == 0:
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *command]
    if tmpfs is not None:
        script = 'mount -t tmpfs -o "size=$1" tmpfs "$2" || exit 97\n'
        if setup is not None:
            script += '"$3" -c "$4" || exit 98\n'
        if read_only:
            script += 'mount -o remount,ro "$2" || exit 99\n'
        script += 'shift 4\nexec "$@"\n'
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                   tmpfs_size, str(tmpfs), sys.executable, setup or "", *command]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd="/", check=False, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, f"child failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return json.loads(lines[-1])


class KilledAfterTheMap:
    """A clustering reducer (PCA to ``n_components``) for a run killed between the reduce stage's two UMAPs.

    When the environment variable ``CLIO_TEST_KILL_MARKER`` names a file that does not exist yet, it first waits
    until the default map, fitted beside it in a worker process, is checkpointed under ``CLIO_TEST_CACHE``, then
    creates the marker and kills its own process with SIGKILL, for real, before the clustering space exists.
    Otherwise (the marker exists, or no variable) it is plain PCA.
    """

    def __init__(self, n_components: int = 5):
        self.n_components = n_components

    def fit_transform(self, X):
        import signal
        import time

        from sklearn.decomposition import PCA

        marker = os.environ.get("CLIO_TEST_KILL_MARKER")
        if marker and not Path(marker).exists():
            reduce_dir = Path(os.environ["CLIO_TEST_CACHE"]) / "checkpoints" / "reduce"
            deadline = time.monotonic() + 600
            while not list(reduce_dir.glob("*/positions.npy")) and time.monotonic() < deadline:
                time.sleep(0.05)
            Path(marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return PCA(n_components=self.n_components).fit_transform(X)
