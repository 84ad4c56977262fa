"""notebooks/demo.ipynb runs top to bottom (fewer training steps than the committed run), so it cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "demo.ipynb"


@pytest.mark.slow
def test_demo_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("SFTGAN_NOTEBOOK_STEPS", "60")
    monkeypatch.setenv(
        "MPLBACKEND", "module://matplotlib_inline.backend_inline"
    )  # figures as outputs, even where Agg is set
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    images = sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))
    assert images >= 3, "the tour draws the scene, the SR comparison and the SFT maps"
    assert "trained 60 iterations" in text
    psnr = {m[0].strip(): float(m[1]) for m in re.findall(r"^(.+?) PSNR-Y vs HR:\s+([\d.]+) dB", text, re.M)}
    assert set(psnr) == {"bicubic", "true prior", "remap hstripes<->vstripes", "override: checker"}
    assert all(5 < v < 60 for v in psnr.values()), psnr
    assert "per-class mean gamma" in text
