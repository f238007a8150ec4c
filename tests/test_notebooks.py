"""The notebooks in notebooks/ run top to bottom with the real components, and are committed without outputs.

Each notebook is executed with nbclient in a kernel that runs this interpreter (a kernelspec written to a temporary
directory at test time, so whatever ``python3`` kernel the machine has installed is never picked up), from
``notebooks/`` as the working directory. The notebooks fit the same corpus, so they share one embedding cache
through ``CLIO_LITE_NOTEBOOK_CACHE``: only the first one embeds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import AsyncKernelManager  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = (
    "quickstart.ipynb", "exploring_a_cluster_tree.ipynb", "privacy_walkthrough.ipynb", "affective_study.ipynb",
)
KERNEL_NAME = "clio-lite-test"
#: A cell of each notebook that opens the explorer: in a kernel, show() displays the widget rather than printing.
EXPLORER_CELLS = {
    "quickstart.ipynb": "release.tree.show(max_depth=2)",
    "exploring_a_cluster_tree.ipynb": "release.show()",
}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: Seconds any one cell may take; the slowest cell is a fit that embeds 1,200 conversations on a cold cache.
CELL_TIMEOUT = 600

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory) -> Path:
    """A kernelspec that starts ipykernel with the interpreter running the tests (the venv's python)."""
    kernels = tmp_path_factory.mktemp("kernels")
    spec = kernels / KERNEL_NAME
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "clio_lite tests",
        "language": "python",
    }))
    return kernels


@pytest.fixture(scope="module")
def notebook_cache(tmp_path_factory) -> Path:
    """One embedding cache for the notebooks (an existing CLIO_LITE_NOTEBOOK_CACHE is kept, to reuse it)."""
    existing = os.environ.get("CLIO_LITE_NOTEBOOK_CACHE")
    return Path(existing) if existing else tmp_path_factory.mktemp("notebook-embeddings")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_without_outputs(name):
    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, f"{name} has no code cell"
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}: cell {index} has stored outputs; clear them before committing"
            assert cell.execution_count is None, f"{name}: cell {index} has an execution count"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, kernel_dir, notebook_cache, monkeypatch):
    monkeypatch.setenv("CLIO_LITE_NOTEBOOK_CACHE", str(notebook_cache))  # the kernel inherits the environment
    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    manager = AsyncKernelManager(
        kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)])
    )
    client = nbclient.NotebookClient(
        notebook,
        km=manager,
        timeout=CELL_TIMEOUT,
        allow_errors=False,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    start = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{name} failed:\n{error}")
    elapsed = time.perf_counter() - start
    print(f"{name}: {elapsed:.1f} s")

    errors = [
        (index, output.get("ename"), output.get("evalue"))
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors, f"{name}: cells raised {errors}"
    unexecuted = [index for index, cell in enumerate(notebook.cells)
                  if cell.cell_type == "code" and cell.execution_count is None]
    assert not unexecuted, f"{name}: cells {unexecuted} did not run"
    if name in EXPLORER_CELLS:
        (cell,) = [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source == EXPLORER_CELLS[name]]
        views = [output for output in cell.outputs if WIDGET_VIEW in output.get("data", {})]
        assert len(views) == 1, f"{name}: {cell.source} did not display the explorer widget: {cell.outputs}"
        assert views[0]["data"]["text/plain"].startswith("ClusterExplorer(")
