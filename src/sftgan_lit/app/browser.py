"""Driving the prior painter's page in headless Chromium (Playwright): the browser test and the README
screenshot use the same steps a person takes (pick a scene, choose a class, paint, run, download).

Playwright cannot download its own browsers here; it drives Debian's ``chromium`` through its executable
path, with the flags that keep a headless Chromium off the network (``CHROMIUM_ARGS``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """Debian's Chromium (``SFTGAN_CHROMIUM`` overrides), or None when it is not installed."""
    for candidate in (os.environ.get("SFTGAN_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def launch(playwright):
    path = chromium_path()
    if path is None:
        raise FileNotFoundError("chromium is not installed: `make install` installs it (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)


def wait_status(page, text: str, timeout_ms: int = 60_000) -> str:
    """Wait until the status line contains ``text``; returns the line."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "t => (document.querySelector('#status')?.innerText || '').includes(t)", arg=text, timeout=timeout_ms
        )
    except PlaywrightTimeout:
        raise AssertionError(
            f"status never showed {text!r}; it shows {page.locator('#status').inner_text()!r}"
        ) from None
    return page.locator("#status").inner_text()


def pick_scene(page, index: int = 0) -> str:
    page.locator("#scene input").click()
    page.get_by_role("option").nth(index).click()
    return wait_status(page, "full pass")


def paint_rectangle(
    page, color: tuple[int, int, int], dx: tuple[float, float], dy: tuple[float, float], editor_id: str = "editor"
) -> None:
    """Choose ``color`` in a brush's palette (``editor_id``: the class brush, ``noise-editor``...) and fill a
    rectangle with horizontal strokes. ``dx`` / ``dy``: its extent as fractions of the canvas's size, from the
    canvas's centre (the image sits there)."""
    editor = page.locator(f"#{editor_id}")
    editor.locator("button[aria-label='Brush']").click()
    editor.locator("button[aria-label='Color']").click()
    editor.locator(f"menu.swatch button.color[style*='rgb({color[0]}, {color[1]}, {color[2]})']").click()
    box = editor.locator("canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    x0, x1 = cx + dx[0] * box["width"], cx + dx[1] * box["width"]
    y = cy + dy[0] * box["height"]
    while y <= cy + dy[1] * box["height"]:
        page.mouse.move(x0, y)
        page.mouse.down()
        page.mouse.move(x1, y, steps=3)
        page.mouse.up()
        y += 12  # screen pixels; the brush (8 image pixels at 150% zoom) covers the gaps
    # the editor hands its new layer to the page a moment after the last stroke: a click on Run before that
    # sends the layer as it was (a loaded machine showed it)
    page.wait_for_timeout(1000)


def download(page, elem_id: str, folder: Path) -> np.ndarray:
    """Click a download button; returns the image it downloads (also saved in ``folder``)."""
    with page.expect_download() as info:
        page.locator(f"#{elem_id}").click()
    path = Path(folder) / f"{elem_id}-{info.value.suggested_filename}"
    info.value.save_as(path)
    return np.array(Image.open(path))
