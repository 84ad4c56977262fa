"""The README's screenshot of the prior painter, made by the app itself: start ``sftgan-app``'s page with the
newest ``train.py`` export, pick a demo scene in headless Chromium, paint a rectangle as another class, run,
and save the page.

    python scripts/app_screenshot.py [--checkpoint latest] [--scene 3] [--cls building] [--out docs/img/app.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

from sftgan_lit.app import browser
from sftgan_lit.app.ui import PainterApp, load_models, serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--scene", type=int, default=3, help="index of the demo test scene")
    parser.add_argument("--cls", default="building", help="the class painted")
    parser.add_argument("--out", default="docs/img/app.png")
    args = parser.parse_args()
    models = load_models(args.checkpoint)
    color = models.colors[models.class_names.index(args.cls)]
    demo, url = serve(PainterApp(models), "127.0.0.1", 0, block=False)
    try:
        with sync_playwright() as pw:
            chromium = browser.launch(pw)
            page = chromium.new_context(viewport={"width": 1280, "height": 1000}, device_scale_factor=1).new_page()
            page.goto(url)
            browser.pick_scene(page, args.scene)
            browser.paint_rectangle(page, color, (-0.02, 0.1), (-0.12, 0.1))
            page.locator("#run").click()
            print(browser.wait_status(page, "recomputed"))
            page.wait_for_timeout(800)  # the result image decoded and drawn
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out, full_page=True)
            chromium.close()
    finally:
        demo.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
