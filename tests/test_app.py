"""The prior painter (sftgan_lit.app): sessions, edits, texture strength, bad uploads, bounded memory,
and the page itself in headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sftgan_lit.app.session import (
    KEEP,
    AppModels,
    InputRefused,
    PaintSession,
    Scene,
    SessionStore,
    layer_classes,
    layer_strength,
)
from sftgan_lit.app.ui import PainterApp, load_models
from sftgan_lit.categories import OUTDOOR_CLASSES, OUTDOOR_COLORS
from sftgan_lit.imresize import imresize
from sftgan_lit.models import export_generator
from sftgan_lit.priors import PriorError, class_mask_from_image

from helpers import tiny_generator, tiny_segmenter_file

S = 4


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A tiny GAN-end generator and a fidelity end of the same architecture, as train.py exports them."""
    folder = tmp_path_factory.mktemp("app_models")
    for name, seed in (("generator.pth", 0), ("generator_fidelity.pth", 1)):
        export_generator(tiny_generator(seed, blocks=2), folder / name, OUTDOOR_CLASSES, OUTDOOR_COLORS)
    return folder


@pytest.fixture(scope="module")
def models(model_files):
    return load_models(str(model_files / "generator.pth"))


@pytest.fixture(scope="module")
def app(models):
    return PainterApp(models, max_sessions=2)


def scene(seed: int = 0, h: int = 24, w: int = 20, labels: bool = True) -> Scene:
    gen = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, 8, (h // 4, w // 4), generator=gen).repeat_interleave(16, 0).repeat_interleave(16, 1)
    return Scene(f"s{seed}", torch.rand(1, 3, h, w, generator=gen), lab.numpy().astype(np.uint8) if labels else None)


def stroke(size, cls: int, y0: int, y1: int, x0: int, x1: int, soft_edge: bool = False) -> np.ndarray:
    """An RGBA paint layer with the box in class ``cls``'s colour; ``soft_edge``: an anti-aliased rim
    (half-transparent, colour blended towards white) as a browser draws one."""
    layer = np.zeros((*size, 4), np.uint8)
    layer[y0:y1, x0:x1, :3] = OUTDOOR_COLORS[cls]
    layer[y0:y1, x0:x1, 3] = 255
    if soft_edge:
        rim = (slice(y0 - 1, y1 + 1), slice(x1, x1 + 1))
        layer[rim][..., :3] = (np.asarray(OUTDOOR_COLORS[cls]) * 0.8 + 255 * 0.2).astype(np.uint8)
        layer[rim][..., 3] = 150  # more than half opaque: part of the stroke
        layer[y1 + 1 : y1 + 2, x0:x1, 3] = 60  # faint: not painted
    return layer


# --------------------------------------------------------------------------- paint layers


def test_brush_edges_map_to_the_stroke_class_never_to_another():
    layer = stroke((40, 40), 5, 10, 20, 10, 20, soft_edge=True)
    mask = layer_classes(layer, OUTDOOR_COLORS, (40, 40))
    assert (mask[10:20, 10:20] == 5).all()
    assert (mask[9:21, 20] == 5).all()  # the anti-aliased rim: nearest palette colour is the stroke's
    assert (mask[21] == KEEP).all()  # under half opaque: the computed prior stays
    assert set(np.unique(mask)) == {5, KEEP}


def test_a_layer_at_the_lr_size_is_enlarged_and_other_sizes_are_refused():
    mask = layer_classes(stroke((6, 5), 2, 0, 2, 0, 2), OUTDOOR_COLORS, (24, 20))
    assert (mask[:8, :8] == 2).all() and (mask[8:] == KEEP).all()
    with pytest.raises(InputRefused, match="LR or the output size"):
        layer_classes(stroke((7, 5), 2, 0, 2, 0, 2), OUTDOOR_COLORS, (24, 20))


def test_strength_layer_snaps_greys_to_levels():
    layer = np.zeros((8, 8, 4), np.uint8)
    layer[:4, :, :3], layer[:4, :, 3] = 190, 255  # ~0.75
    layer[4:6, :, :3], layer[4:6, :, 3] = 10, 255  # ~0
    values = layer_strength(layer, (8, 8))
    assert np.allclose(values[:4], 0.75) and np.allclose(values[4:6], 0.0) and np.isnan(values[6:]).all()


# --------------------------------------------------------------------------- a session


def test_painting_changes_the_painted_region_and_equals_a_full_recompute(models):
    session = PaintSession(models, scene(0))
    before = session.run()
    assert session.last["full"]
    session.set_paint_layer(stroke((96, 80), 5, 40, 56, 32, 48))
    after = session.run()
    assert not session.last["full"] and session.last["fraction"] < 1
    assert (after[40:56, 32:48] != before[40:56, 32:48]).any()
    prior = session.prior()
    assert (prior[0, 5, 40:56, 32:48] == 1).all()
    fresh = PaintSession(models, scene(0))  # the same edits from scratch
    fresh.set_paint_layer(stroke((96, 80), 5, 40, 56, 32, 48))
    assert np.array_equal(fresh.run(), after)
    with torch.no_grad():
        full = models.generator(scene(0).lr, prior)
    assert np.abs(after.astype(int) - (full[0].clamp(0, 1) * 255).round().permute(1, 2, 0).numpy()).max() <= 1
    # the eraser: an empty layer gives the computed prior back, and the first result
    session.set_paint_layer(None)
    assert np.array_equal(session.run(), before)


def test_remap_override_and_sources(models):
    session = PaintSession(models, scene(1))
    assert session.source == "label map" and models.sources(scene(1)) == ["label map", "uniform"]
    labels = torch.as_tensor(session.scene.labels).long()
    session.set_remap("sky", "water")
    probs = session.prior()[0]
    assert (probs[2][labels == 1] == 1).all() and (probs[1] == 0).all()
    session.set_override("grass")
    assert (session.prior()[0, 3] == 1).all()
    session.set_paint_layer(stroke((96, 80), 6, 0, 8, 0, 8))  # paint goes on top of the override
    assert (session.prior()[0, 6, :8, :8] == 1).all()
    for bad in (lambda: session.set_override("lava"), lambda: session.set_remap("sky", None)):
        with pytest.raises(InputRefused):
            bad()
    session.set_source("uniform")
    assert torch.allclose(session.base, torch.full_like(session.base, 1 / 8))
    with pytest.raises(InputRefused, match="not available"):
        session.set_source("segmenter")
    assert PaintSession(models, scene(2, labels=False)).source == "uniform"  # an upload has no label map


def test_the_prior_png_is_what_predict_reads_back(models):
    session = PaintSession(models, scene(3))
    session.set_paint_layer(stroke((96, 80), 7, 10, 30, 10, 30))
    mask = class_mask_from_image(session.prior_image(), OUTDOOR_CLASSES, OUTDOOR_COLORS)
    assert np.array_equal(mask, session.prior()[0].argmax(0).numpy())


def test_texture_strength_ends_are_the_two_models_and_regions_blend_them(models):
    sc = scene(4)
    session = PaintSession(models, sc)
    with torch.no_grad():
        gan = models.generator(sc.lr, session.prior())
        fid = models.fidelity(sc.lr, session.prior())

    def as_uint8(t):
        return (t[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()

    assert np.array_equal(session.run(), as_uint8(gan))
    session.set_strength(0.0)
    assert np.array_equal(session.run(), as_uint8(fid))
    session.set_strength(0.5)
    half = session.run()
    assert not np.array_equal(half, as_uint8(fid)) and not np.array_equal(half, as_uint8(gan))
    # a region painted at strength 1 shows the GAN model's pixels there; the rest stays at 0.5
    layer = np.zeros((96, 80, 4), np.uint8)
    layer[:48, :, :3], layer[:48, :, 3] = 255, 255
    session.set_strength_layer(layer)
    blended = session.run()
    assert np.array_equal(blended[:48], as_uint8(gan)[:48]) and np.array_equal(blended[48:], half[48:])
    assert sorted(session._results) == [0.0, 0.5, 1.0]
    session.set_strength_layer(None)
    session.run()
    assert list(session._results) == [0.5]  # ends no longer needed are dropped
    with pytest.raises(InputRefused, match="strength"):
        session.set_strength(1.5)


def test_without_a_fidelity_model_the_strength_is_fixed(model_files, tmp_path):
    shutil.copy(model_files / "generator.pth", tmp_path / "generator.pth")
    alone = load_models(str(tmp_path / "generator.pth"))
    assert alone.fidelity is None
    with pytest.raises(InputRefused, match="fidelity"):
        PaintSession(alone, scene(0)).set_strength(0.5)


# --------------------------------------------------------------------------- handlers, uploads, sessions


def _upload(app, path, mode="LR (super-resolve as is)", key=None):
    out = app.upload(str(path), mode, key)
    return out[0], out[6]


def test_bad_uploads_are_refused_in_the_page(app, tmp_path):
    cases = {
        "text.png": lambda p: p.write_text("not an image"),
        "cmyk.jpg": lambda p: Image.new("CMYK", (16, 16)).save(p),
        "huge.png": lambda p: Image.new("RGB", (300, 300)).save(p),  # LR over the app's limit
        "bomb.png": lambda p: Image.new("RGB", (9000, 8000)).save(p),  # over the decompression-bomb guard
    }
    app.models.max_pixels, limit = 50_000_000, app.models.max_lr_pixels
    app.models.max_lr_pixels = 256 * 256
    try:
        for name, make in cases.items():
            make(tmp_path / name)
            key, message = _upload(app, tmp_path / name)
            assert message.startswith("**Refused:**") and name in message, (name, message)
    finally:
        app.models.max_pixels, app.models.max_lr_pixels = 64_000_000, limit
    Image.new("RGB", (300, 300), (40, 90, 20)).save(tmp_path / "ok.png")
    key, message = _upload(app, tmp_path / "ok.png", "HR (downscale x4 first)")
    assert "75x75 LR" in message and key
    out = app.upload(str(tmp_path / "ok.png"), "HR (downscale x4 first)", key)
    assert out[7].endswith("ok_sr.png") and out[8].endswith("ok_prior.png")  # downloads named after the upload


def test_rgba_and_16_bit_grey_uploads_keep_their_alpha_and_greyness_in_the_download(app, tmp_path):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (12, 14, 4), np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rng.integers(0, 65536, (12, 14)).astype(np.uint16)).save(tmp_path / "deep.png")
    out = app.upload(str(tmp_path / "rgba.png"), "LR (super-resolve as is)", None)
    assert not out[6].startswith("**Refused:**")
    download = np.asarray(Image.open(out[7]))
    assert download.shape == (48, 56, 4)
    up = imresize(torch.from_numpy(rgba[..., 3]).float()[None, None] / 255, 4).clamp(0, 1)[0, 0].numpy()
    assert np.array_equal(download[..., 3], np.round(up * 255).astype(np.uint8))
    assert np.array_equal(download[..., :3], out[5][1])  # the colour is what the page shows
    out = app.upload(str(tmp_path / "deep.png"), "LR (super-resolve as is)", None)
    assert Image.open(out[7]).mode == "L"


def test_sessions_are_separate_and_bounded(app):
    names = list(app.scenes)
    a = app.pick_demo(names[0], None)
    b = app.pick_demo(names[1], None)
    key_a, key_b = a[0], b[0]
    session_a, _ = app.store.get(key_a)
    first_a = session_a.run().copy()
    editor_b = {"background": b[1]["background"], "layers": [stroke((192, 192), 5, 0, 96, 0, 192)], "composite": None}
    app.run(key_b, editor_b, None, 1.0)  # the second user's edit
    assert np.array_equal(app.store.get(key_a)[0].run(), first_a)  # never shows in the first user's result
    assert app.store.get(key_b)[0].paint[:96].min() == 5 and (app.store.get(key_a)[0].paint == KEEP).all()
    app.run(key_b, editor_b, None, 1.0)  # b is now the most recently used
    app.pick_demo(names[2], None)  # a third session: the least recently used one (a) is dropped
    assert len(app.store) == 2
    assert not (app.downloads / key_a).exists() and (app.downloads / key_b).is_dir()  # its files went with it
    editor = {"background": a[1]["background"], "layers": [], "composite": None}
    assert "no image in this session" in app.run(key_a, editor, None, 1.0)[1]
    assert "unknown demo scene" in app.pick_demo("nope", None)[6]


def test_session_store_rejects_a_bad_capacity():
    with pytest.raises(ValueError, match="max_sessions"):
        SessionStore(0)


def test_cli_refuses_bad_options_with_one_line(model_files, capsys):
    from sftgan_lit.cli import app_main

    for args, needle in (
        (["--port", "70000"], "--port=70000"),
        (["--max-sessions", "0"], "--max-sessions=0"),
        (["--checkpoint", str(model_files / "missing.pth")], "missing.pth"),
    ):
        try:
            code = app_main(args)
        except SystemExit as stop:  # start-up errors leave through sys.exit, as the console script does
            code = stop.code
        assert code == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err


def test_models_with_unknown_classes_are_refused(tmp_path):
    g = tiny_generator(blocks=1, num_classes=5)
    export_generator(g, tmp_path / "generator.pth")
    with pytest.raises(ValueError, match="no class names"):
        AppModels(g)


# --------------------------------------------------------------------------- the page in a real browser


@pytest.mark.browser
def test_paint_run_and_a_second_user_in_headless_chromium(noise_models, tmp_path):
    """Pick a demo scene, paint a rectangle as another class, run: the output changes inside the painted
    area and not beyond the receptive field; the same with the noise brush (a model that reads a noise
    level); a second browser context sees its own image."""
    models = noise_models
    from playwright.sync_api import sync_playwright

    from sftgan_lit.app import browser
    from sftgan_lit.app.ui import serve
    from sftgan_lit.inference.incremental import IncrementalSR

    app = PainterApp(models, max_sessions=4)
    demo, url = serve(app, "127.0.0.1", 0, block=False)
    try:
        with sync_playwright() as pw:
            chromium = browser.launch(pw)
            first = chromium.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            first.goto(url)
            browser.pick_scene(first, 0)
            sr0 = browser.download(first, "download-sr", tmp_path)
            prior0 = browser.download(first, "download-prior", tmp_path)
            building = OUTDOOR_COLORS[OUTDOOR_CLASSES.index("building")]
            browser.paint_rectangle(first, building, (-0.04, 0.04), (-0.08, 0.08))
            first.locator("#run").click()
            status = browser.wait_status(first, "recomputed")
            first.screenshot(path=str(tmp_path / "painted.png"), full_page=True)
            sr1 = browser.download(first, "download-sr", tmp_path)
            prior1 = browser.download(first, "download-prior", tmp_path)

            painted = (prior0 != prior1).any(-1)
            assert painted.sum() > 200, "the brush strokes did not reach the prior"
            assert (prior1[painted] == building).all()  # the stroke's class, edges included
            ys, xs = np.nonzero(painted)
            # more than one level: a recomputed window may round a value on an 8-bit boundary the other way
            changed = (np.abs(sr0.astype(int) - sr1) > 1).any(-1)
            # (a tiny random model clips many pixels to 0 or 255, where a new class changes nothing)
            assert changed[painted].mean() > 0.25, "the output did not change where the prior was painted"
            session = next(iter(app.store._items.values()))[0]
            reach = S * IncrementalSR(models.generator, session.scene.lr, session.prior()).reach
            near = np.zeros_like(painted)
            near[max(0, ys.min() - reach) : ys.max() + 1 + reach, max(0, xs.min() - reach) : xs.max() + 1 + reach] = (
                True
            )
            assert not changed[~near].any(), "pixels beyond the receptive field changed"
            assert (~near).sum() > 0.2 * near.size  # the check covers a real part of the image
            assert "% of the image" in status

            # the noise brush: white is the noise channel's top (50 levels) in the painted region only
            first.get_by_role("tab", name="Paint noise level").click()
            first.locator("#noise-editor canvas").first.wait_for(state="visible")
            first.wait_for_timeout(500)  # the tab's editor lays out its canvas once shown
            browser.paint_rectangle(first, (255, 255, 255), (-0.04, 0.04), (-0.08, 0.08), editor_id="noise-editor")
            first.locator("#run").click()
            assert "recomputed" in browser.wait_status(first, "% of the image): ")  # the noise paint is in
            sr2 = browser.download(first, "download-sr", tmp_path)
            noisy = ~np.isnan(session.noise_paint)
            assert noisy.sum() > 200 and np.all(session.noise_paint[noisy] == 50)
            # more than one level: a recomputed window may round a value on an 8-bit boundary the other way
            moved = (np.abs(sr2.astype(int) - sr1) > 1).any(-1)
            assert moved[noisy].mean() > 0.25, "the output did not change where the noise level was painted"
            ys, xs = np.nonzero(noisy)
            near = np.zeros_like(noisy)
            near[max(0, ys.min() - reach) : ys.max() + 1 + reach, max(0, xs.min() - reach) : xs.max() + 1 + reach] = (
                True
            )
            assert not moved[~near].any(), "pixels beyond the receptive field changed"
            sr1 = sr2

            second = chromium.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            second.goto(url)
            browser.pick_scene(second, 1)
            second.screenshot(path=str(tmp_path / "second.png"), full_page=True)
            sr_other = browser.download(second, "download-sr", tmp_path)
            assert not np.array_equal(sr_other, sr1)
            assert np.array_equal(browser.download(first, "download-sr", tmp_path), sr1)  # the first is untouched
            assert "demo_test_0000" in first.locator("#status").inner_text()
            chromium.close()
    finally:
        demo.close()


def test_the_segmenter_source_runs_on_the_lr(models, tmp_path):
    from sftgan_lit.priors import SegmenterPrior, SegmentOptions

    arch = tiny_segmenter_file(tmp_path / "seg.pth")
    seg = SegmenterPrior("segmenter", str(tmp_path / "seg.pth"), mode="online", arch=arch)
    with_seg = AppModels(models.generator, models.fidelity, seg, segment=SegmentOptions())
    sc = scene(5, labels=False)
    session = PaintSession(with_seg, sc)
    assert with_seg.sources(sc) == ["segmenter", "uniform"] and session.source == "segmenter"
    torch.testing.assert_close(session.base, seg.from_lr(sc.lr))  # the segmenter's own probabilities
    session.set_paint_layer(stroke((96, 80), 1, 0, 16, 0, 16))
    image = session.run()
    assert image.shape == (96, 80, 3) and session.last["full"]


def test_loading_the_models_leaves_autograd_on_for_the_process(model_files):
    """load_models once switched autograd off process-wide (a library call must not; later training in the
    same process then failed with "element 0 of tensors does not require grad")."""
    models = load_models(str(model_files / "generator.pth"))
    assert torch.is_grad_enabled()
    assert not any(p.requires_grad for p in models.generator.parameters())


def test_a_port_in_use_a_bad_host_or_auth_exit_2_with_one_line(capsys):
    """A port in use once ended in Gradio's traceback after the models had loaded."""
    import socket

    from sftgan_lit.cli import app_main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args, needle in (
            (["--port", str(port)], f"--host=127.0.0.1 --port={port}: cannot listen there"),
            (["--host", "no-such-host.invalid", "--port", "0"], "not an address to listen on"),
            (["--auth", "nopassword"], "--auth=nopassword: must be USER:PASS"),
        ):
            assert app_main(args) == 2
            err = capsys.readouterr().err
            assert needle in err and len(err.strip().splitlines()) == 1, err
    # every interface without a login: said at start-up (here the checkpoint is missing, so it stops after)
    with pytest.raises(SystemExit) as stop:
        app_main(["--host", "0.0.0.0", "--port", "0", "--checkpoint", "missing.pth"])
    assert stop.value.code == 2
    assert "--host=0.0.0.0 serves the page to other machines without a login" in capsys.readouterr().err


def test_the_file_route_serves_this_apps_outputs_and_nothing_else(models, tmp_path, monkeypatch):
    """Gradio once served every file under its shared cache folder (other runs' results, files other programs
    drop there) with status 200; now its cache is the app's own folder, which goes at exit."""
    import urllib.error
    import urllib.request

    pytest.importorskip("gradio")
    from sftgan_lit.app.ui import serve

    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    shared = Path(tempfile.gettempdir()) / "gradio"  # Gradio's default cache folder
    shared.mkdir(exist_ok=True)
    planted = shared / f"planted-{uuid.uuid4().hex}.txt"
    planted.write_text("another program's file")
    app = PainterApp(models, max_sessions=2)
    demo, url = serve(app, port=0, block=False)
    try:

        def status(path) -> int:
            try:
                return urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=30).status
            except urllib.error.HTTPError as err:
                return err.code

        assert status(planted) == 403
        own = Path(os.environ["GRADIO_TEMP_DIR"])
        assert own.is_relative_to(app.downloads)
        own.mkdir(parents=True, exist_ok=True)
        (own / "ours.txt").write_text("this app's")
        assert status(own / "ours.txt") == 200
    finally:
        demo.close()
        planted.unlink()


# --------------------------------------------------------------------------- the noise level (continuous prior channel)


@pytest.fixture(scope="module")
def noise_models(tmp_path_factory):
    """A tiny generator that reads the classes and the degradation channels (prior=[labels,degradation])."""
    from sftgan_lit.priors import LabelPrior

    prior = LabelPrior(continuous=["noise_sigma", "blur_sigma", "jpeg_quality"])
    path = tmp_path_factory.mktemp("noise_app") / "generator.pth"
    g = tiny_generator(blocks=2, num_continuous=3)
    export_generator(g, path, prior.class_names, prior.colors, continuous=[c.record() for c in prior.continuous])
    return load_models(str(path))


def noise_layer(size, fraction: float, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    layer = np.zeros((*size, 4), np.uint8)
    layer[y0:y1, x0:x1, :3] = round(fraction * 255)
    layer[y0:y1, x0:x1, 3] = 255
    return layer


def test_the_noise_slider_and_brush_reach_the_generator_incrementally(noise_models, models):
    session = PaintSession(noise_models, scene(3))
    clean = session.run().copy()
    session.set_noise(20)
    slid = session.run().copy()
    assert session.last["full"] is False and np.abs(slid.astype(int) - clean).max() > 2
    prior = session.prior()
    assert prior.shape[1] == 8 + 3 and torch.allclose(prior[0, 8], torch.full((96, 80), 20 / 50))
    assert torch.allclose(prior[0, 10], torch.ones(96, 80))  # jpeg_quality at its default, 100 of [0, 100]
    session.set_noise_layer(noise_layer((96, 80), 0.6, 8, 40, 8, 40))  # 30 levels painted
    painted = session.run()
    assert session.last["box"] is not None and session.last["fraction"] < 1
    assert torch.allclose(session.prior()[0, 8, 8:40, 8:40], torch.full((32, 32), 30 / 50))
    fresh = PaintSession(noise_models, scene(3))  # the incremental result equals a full recompute
    fresh.set_noise(20)
    fresh.set_noise_layer(noise_layer((96, 80), 0.6, 8, 40, 8, 40))
    assert np.array_equal(fresh.run(), painted)
    with pytest.raises(InputRefused, match=r"noise level 90: must be in \[0, 50\]"):
        session.set_noise(90)
    plain = PaintSession(models, scene(3))
    with pytest.raises(InputRefused, match="reads no noise level"):
        plain.set_noise(5)
    with pytest.raises(InputRefused, match="noise brush has no effect"):
        plain.set_noise_layer(noise_layer((96, 80), 0.6, 8, 40, 8, 40))


def test_an_estimator_sets_the_starting_noise_level_and_the_other_channels(noise_models, tmp_path):
    """With --estimator, the slider starts at the level the estimator reads from the image and the blur / JPEG
    channels are its maps; an estimator of other channels is refused when the app starts."""
    from sftgan_lit.models import DegradationEstimator, export_estimator, load_estimator
    from sftgan_lit.priors import CHANNELS

    from helpers import randomize_

    torch.manual_seed(3)
    est = randomize_(DegradationEstimator(3, num_features=8, num_blocks=1, smooth=3))
    export_estimator(est, tmp_path / "est.pth", [c.record() for c in noise_models.channels])
    models = AppModels(noise_models.generator, estimator=str(tmp_path / "est.pth"))
    sc = scene(4)
    session = PaintSession(models, sc)
    with torch.no_grad():
        y = load_estimator(tmp_path / "est.pth")[0](sc.lr)[0]
    noise = CHANNELS["noise_sigma"]
    assert session.noise_level == float(noise.physical(y[0]).mean().round())
    expected_blur = y[1].clamp(0, 1).repeat_interleave(4, 0).repeat_interleave(4, 1)  # normalised, as fed
    assert torch.allclose(session.continuous()[0, 1], expected_blur, atol=1e-6)
    session.run()
    export_estimator(
        DegradationEstimator(2, 8, 1, 3), tmp_path / "two.pth", [noise.record(), CHANNELS["depth"].record()]
    )
    with pytest.raises(PriorError, match="prior.estimator=.*depth"):
        AppModels(noise_models.generator, estimator=str(tmp_path / "two.pth"))


def test_an_app_start_up_error_leaves_an_earlier_commands_run_log_alone(model_files, tmp_path, capsys):
    """In one process, a predict command's run-log record (kept so that its own refusal can take its log
    lines back) once stayed behind: a later app start-up error deleted that predict run's log."""
    from sftgan_lit.cli import app_main, composition_check

    out = tmp_path / "sr"
    composition_check("sftgan-predict", "predict", [f"out={out}"])
    (out / "predict.log").write_text("the predict run's lines\n")  # what Hydra writes for that run
    with pytest.raises(SystemExit) as stop:
        app_main(["--checkpoint", str(model_files / "missing.pth")])
    assert stop.value.code == 2 and "missing.pth" in capsys.readouterr().err
    assert (out / "predict.log").read_text() == "the predict run's lines\n"
