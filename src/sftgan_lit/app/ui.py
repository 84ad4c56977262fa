"""``sftgan-app``: paint the categorical prior on a photo and watch the textures change (Gradio).

The page: a scene (a demo scene or an upload, as LR or as HR to downscale), the prior as a translucent
overlay in the class colours with a legend, a class brush (the palette), an eraser that gives the
computed prior back, remap and override, a texture-strength slider (per image) and a strength brush (per
region), for a model with a noise channel a noise slider (per image) and a noise brush (per region), and the result beside bicubic in a before/after slider, with the SR PNG and the edited prior
(class colours, ``predict.py prior_mask=`` reads it) to download. Every handler is a thin call into
``session.PaintSession``; anything refused is a message in the page, never a crash.
"""

from __future__ import annotations

import atexit
import html
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from ..data.demo import DemoConfig, default_cache_dir, generate_demo
from ..data.io import ImageError, read_image, read_label_map, write_png
from ..data.picture import write_picture
from ..data.transforms import lr_from_image
from ..priors.validation import PriorError
from .session import (
    NOISE_FRACTIONS,
    STRENGTH_LEVELS,
    AppModels,
    InputRefused,
    PaintSession,
    Scene,
    SessionStore,
    class_names_of,
)

log = logging.getLogger(__name__)

# What a handler may refuse with a message in the page (bad files, bad options, an expired session).
REFUSED = (InputRefused, ImageError, PriorError, ValueError, OSError)


def demo_scenes(models: AppModels, split: str = "test") -> dict[str, Scene]:
    """The embedded demo set's scenes (generated on first use) with their label maps, by name."""
    root = generate_demo(default_cache_dir() / "demo", DemoConfig()) / split
    scenes = {}
    for path in sorted((root / "images").glob("*.png")):
        lr, _ = lr_from_image(read_image(path), "hr", models.scale)
        h, w = lr.shape[-2:]
        labels = read_label_map(root / "labels" / path.name, len(models.class_names))[
            : h * models.scale, : w * models.scale
        ]
        scenes[f"demo {split} {path.stem}"] = Scene(f"demo_{split}_{path.stem}", lr, labels)
    return scenes


def legend(models: AppModels) -> str:
    items = "".join(
        f'<span style="display:inline-flex;align-items:center;margin-right:10px">'
        f'<span style="width:14px;height:14px;background:rgb{tuple(c)};border:1px solid #555;margin-right:4px"></span>'
        f"{html.escape(name)}</span>"
        for name, c in zip(models.class_names, models.colors, strict=True)
    )
    return f'<div id="legend">{items}</div>'


def _hex(color) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


class PainterApp:
    """The page and its handlers over a ``SessionStore`` (``max_sessions``) and a folder for downloads."""

    def __init__(self, models: AppModels, max_sessions: int = 8, demo_split: str = "test") -> None:
        self.models = models
        self.scenes = demo_scenes(models, demo_split)
        self.downloads = Path(tempfile.mkdtemp(prefix="sftgan-app-"))
        # the app's files, Gradio's copies of them included, live here and nowhere else, and go at exit
        atexit.register(shutil.rmtree, self.downloads, True)
        # a dropped session's download folder goes with it: disk, like memory, holds max_sessions sessions
        self.store = SessionStore(max_sessions, on_evict=lambda key: shutil.rmtree(self.downloads / key, True))

    # ---------------------------------------------------------------- handlers (plain Python; tested directly)
    def _outputs(self, key: str, session: PaintSession, image: np.ndarray, message: str):
        folder = self.downloads / key
        folder.mkdir(exist_ok=True)
        stem = session.scene.name
        sr_path, prior_path = folder / f"{stem}_sr.png", folder / f"{stem}_prior.png"
        # a download of this moment (speed over size), with the upload's alpha channel and greyness
        write_picture(sr_path, session.scene.format.encode(image, session.alpha), 1)
        write_png(prior_path, session.prior_image(), compress_level=1)
        return (session.bicubic, image), message, str(sr_path), str(prior_path)

    def status(self, session: PaintSession) -> str:
        last, (h, w) = session.last, session.scene.lr.shape[-2:]
        what = (
            "full pass"
            if last["full"]
            else "nothing changed"
            if last["box"] is None
            else f"recomputed LR rows {last['box'][0]}-{last['box'][1]}, columns {last['box'][2]}-{last['box'][3]} "
            f"({100 * last['fraction']:.0f}% of the image)"
        )
        return (
            f"**{session.scene.name}** ({w}x{h} LR -> {w * session.models.scale}x{h * session.models.scale}), "
            f"prior: {session.source}, strength {session.strength:g}"
            + (f", noise level {session.noise_level:g}" if session.models.noise is not None else "")
            + (
                f" (painted on {100 * painted:.0f}% of the image)"
                if (painted := float(np.mean(~np.isnan(session.noise_paint))))
                else ""
            )
            + f": {what} in {last['seconds']:.2f} s"
        )

    def open_scene(self, scene: Scene, key: str | None):
        """A new session for ``scene`` (a browser's previous one is replaced), run once."""
        session = PaintSession(self.models, scene)
        key = self.store.add(session, key or uuid.uuid4().hex)
        image = session.run()
        return key, session, image

    def start(self, scene: Scene, key: str | None):
        import gradio as gr

        key, session, image = self.open_scene(scene, key)
        editor = {"background": session.overlay(), "layers": [], "composite": None}
        strength_editor = {"background": session.bicubic, "layers": [], "composite": None}
        noise_editor = {"background": session.bicubic, "layers": [], "composite": None}
        sources = self.models.sources(scene)
        return (
            key,
            editor,
            strength_editor,
            noise_editor,
            gr.update(choices=sources, value=session.source),
            *self._outputs(key, session, image, self.status(session)),
            gr.update(value=session.noise_level),  # the noise slider: the estimated level, or the default
        )

    def _refusal(self, err: BaseException, n: int, after: int = 2):
        """The page's outputs for a refusal: ``n`` unchanged outputs, the message, ``after`` unchanged outputs."""
        import gradio as gr

        return (*([gr.update()] * n), f"**Refused:** {html.escape(str(err))}", *([gr.update()] * after))

    def pick_demo(self, name: str, key: str | None):
        if name not in self.scenes:
            return self._refusal(InputRefused(f"unknown demo scene {name!r}"), 6, after=3)
        return self.start(self.scenes[name], key)

    def upload(self, path: str | None, mode: str, key: str | None):
        try:
            if not path:
                raise InputRefused("no file was uploaded")
            scene = self.models.scene_from_file(path, "hr" if mode.startswith("HR") else "lr")
            return self.start(scene, key)
        except REFUSED as err:
            log.info("upload refused: %s", err)
            return self._refusal(err, 6, after=3)

    def _edit(self, key, editor, strength_editor, change, redraw: bool = True, noise_editor=None):
        """Apply ``change(session)`` and the two paint layers, run. ``redraw``: the edit changed the prior under
        the paint (source, remap, override), so the editor gets the new overlay, the paint layer kept; a plain
        run leaves the editor alone (the browser already shows the strokes, and keeps its undo history)."""
        import gradio as gr

        try:
            session, lock = self.store.get(key)
            with lock:
                change(session)
                session.set_paint_layer(_layer(editor))
                session.set_strength_layer(_layer(strength_editor))
                session.set_noise_layer(_layer(noise_editor))
                image = session.run()
                background = session.overlay() if redraw else None
            outputs = self._outputs(key, session, image, self.status(session))
            if not redraw:
                return outputs
            layers = list(editor.get("layers") or []) if editor else []
            return ({"background": background, "layers": layers, "composite": None}, *outputs)
        except REFUSED as err:
            log.info("edit refused: %s", err)
            refused = (gr.update(), f"**Refused:** {html.escape(str(err))}", gr.update(), gr.update())
            return (gr.update(), *refused) if redraw else refused

    def run(self, key, editor, strength_editor, strength, noise_editor=None, noise=None):
        def change(s: PaintSession) -> None:
            s.set_strength(strength)
            if noise is not None and self.models.noise is not None:
                s.set_noise(noise)

        return self._edit(key, editor, strength_editor, change, redraw=False, noise_editor=noise_editor)

    def set_source(self, key, editor, strength_editor, source, noise_editor=None):
        return self._edit(key, editor, strength_editor, lambda s: s.set_source(source), noise_editor=noise_editor)

    def remap(self, key, editor, strength_editor, source, target, noise_editor=None):
        change = lambda s: s.set_remap(source or None, target or None)
        return self._edit(key, editor, strength_editor, change, noise_editor=noise_editor)

    def override(self, key, editor, strength_editor, name, noise_editor=None):
        change = lambda s: s.set_override(name or None)
        return self._edit(key, editor, strength_editor, change, noise_editor=noise_editor)

    # ---------------------------------------------------------------- the page
    def blocks(self):
        import gradio as gr

        # Gradio serves every file under its cache folder: a private one inside the app's folder, so the file
        # route reaches this app's outputs only, not the shared default (/tmp/gradio: other runs' and programs'
        # files). Read when the page is built and when it is served, hence an environment variable.
        os.environ["GRADIO_TEMP_DIR"] = str(self.downloads / "gradio")
        m = self.models
        strength_on = m.fidelity is not None
        with gr.Blocks(title="sftgan_lit: paint the prior") as demo:
            key = gr.State(None)
            gr.Markdown(
                "## Paint the prior\nSFTGAN renders each region with the texture of its class. Paint classes on "
                "the image, press **Run**, and compare with bicubic. Only the part of the result that an edit "
                "reaches is recomputed."
            )
            with gr.Row():
                with gr.Column(scale=1, min_width=300):
                    scene = gr.Dropdown(list(self.scenes), label="Demo scene", value=None, elem_id="scene")
                    upload = gr.File(label="Or upload a photo", file_types=["image"], type="filepath", elem_id="upload")
                    mode = gr.Radio(
                        ["LR (super-resolve as is)", f"HR (downscale x{m.scale} first)"],
                        value="LR (super-resolve as is)",
                        label="The upload is",
                    )
                    source = gr.Radio([], label="Prior source", elem_id="source")
                    with gr.Row():
                        remap_from = gr.Dropdown(["", *m.class_names], value="", label="Remap class")
                        remap_to = gr.Dropdown(["", *m.class_names], value="", label="to")
                    remap_btn = gr.Button("Remap", size="sm")
                    with gr.Row():
                        override = gr.Dropdown(["", *m.class_names], value="", label="Whole image as")
                        override_btn = gr.Button("Override", size="sm")
                    strength = gr.Slider(
                        0.0,
                        1.0,
                        value=1.0,
                        step=0.05,
                        label="Texture strength (0 = fidelity model, 1 = GAN model)",
                        interactive=strength_on,
                        info=None if strength_on else "needs the fidelity-stage generator (checkpoint_fidelity)",
                    )
                    noise_on = m.noise is not None
                    noise = gr.Slider(
                        m.noise.low if noise_on else 0.0,
                        m.noise.high if noise_on else 1.0,
                        value=m.noise.default if noise_on else 0.0,
                        step=1.0,
                        label=f"Noise to remove ({m.noise.unit if noise_on else 'levels'})",
                        interactive=noise_on,
                        info=None if noise_on else "needs a model trained with prior=[labels,degradation]",
                        elem_id="noise",
                    )
                    run = gr.Button("Run", variant="primary", elem_id="run")
                    status = gr.Markdown("Pick a demo scene or upload a photo.", elem_id="status")
                    gr.HTML(legend(m))
                with gr.Column(scale=2):
                    with gr.Tab("Paint classes"):
                        editor = _paint_editor(
                            "Prior (translucent) and your paint",
                            [_hex(c) for c in m.colors],
                            _hex(m.colors[0]),
                            "editor",
                        )
                    with gr.Tab("Paint texture strength"):
                        strength_editor = _grey_editor(
                            "Strength per region (black 0 ... white 1); unpainted: the slider",
                            STRENGTH_LEVELS,
                            "strength-editor",
                            strength_on,
                        )
                    with gr.Tab("Paint noise level"):
                        noise_editor = _grey_editor(
                            "Noise to remove per region (black 0 ... white the most); unpainted: the slider",
                            NOISE_FRACTIONS,
                            "noise-editor",
                            noise_on,
                        )
                with gr.Column(scale=2):
                    result = gr.ImageSlider(
                        label="Bicubic | SFTGAN",
                        type="numpy",
                        format="png",
                        elem_id="result",
                        max_height=640,
                        slider_position=25,
                    )
                    with gr.Row():
                        sr_file = gr.DownloadButton("Download SR PNG", elem_id="download-sr")
                        prior_file = gr.DownloadButton("Download prior PNG", elem_id="download-prior")

            started = [key, editor, strength_editor, noise_editor, source, result, status, sr_file, prior_file, noise]
            edited = [editor, result, status, sr_file, prior_file]
            scene.input(self.pick_demo, [scene, key], started)
            upload.upload(self.upload, [upload, mode, key], started)
            running = [key, editor, strength_editor, strength, noise_editor, noise]
            run.click(self.run, running, edited[1:])
            strength.release(self.run, running, edited[1:])
            noise.release(self.run, running, edited[1:])
            source.input(self.set_source, [key, editor, strength_editor, source, noise_editor], edited)
            remap_btn.click(self.remap, [key, editor, strength_editor, remap_from, remap_to, noise_editor], edited)
            override_btn.click(self.override, [key, editor, strength_editor, override, noise_editor], edited)
        return demo


def _paint_editor(label: str, colors: list[str], default: str, elem_id: str, interactive: bool | None = None):
    """A Gradio image editor painting in ``colors`` only (exact colours: PNG, no transforms or extra layers)."""
    import gradio as gr

    return gr.ImageEditor(
        label=label,
        type="numpy",
        image_mode="RGBA",
        format="png",
        sources=(),
        transforms=(),
        layers=False,
        brush=gr.Brush(colors=colors, default_color=default, color_mode="fixed", default_size=8),
        eraser=gr.Eraser(default_size=8),
        interactive=interactive,
        elem_id=elem_id,
    )


def _grey_editor(label: str, fractions, elem_id: str, interactive: bool):
    """An image editor painting the greys ``fraction * 255`` of ``fractions`` (white by default)."""
    return _paint_editor(label, [_hex([round(v * 255)] * 3) for v in fractions], "#ffffff", elem_id, interactive)


def _layer(editor) -> np.ndarray | None:
    """The paint layer of an ImageEditor value (None: nothing painted)."""
    if not editor or not editor.get("layers"):
        return None
    layer = editor["layers"][0]
    return None if layer is None else np.asarray(layer)


def load_models(
    checkpoint: str = "latest",
    checkpoint_fidelity: str | None = None,
    segmenter: str | None = None,
    max_lr_pixels: int = 256 * 256,
    max_pixels: int = 64_000_000,
    segmenter_engine: str = "auto",
    estimator: str | None = None,
) -> AppModels:
    """The server's models on the CPU: ``checkpoint`` (``latest`` = the newest ``train.py`` export), the
    fidelity end beside it (``generator_fidelity.pth``) unless given, an optional segmenter file, and for a
    generator with continuous channels an optional degradation ``estimator`` file (the channels read from each
    image; the noise slider starts at its estimate).

    The generator runs in torch fp32 (the incremental recompute needs its layers, and equals a full pass);
    the segmenter, run once per image, on ``segmenter_engine`` (``auto``: OpenVINO, bf16 where the CPU has
    it natively; ``inference.engines.choose``)."""
    import torch

    from ..config import ConfigError
    from ..inference.engines import choose
    from ..inference.predict import fidelity_checkpoint
    from ..inference.runtime import resolve_checkpoint
    from ..inference.runtime import segmenter_engine as engine_for
    from ..models import load_generator
    from ..priors import SegmenterPrior, SegmentOptions
    from ..state_dict import CheckpointError

    def load(path: Path, key: str):
        try:
            # weights that record no graph in any thread (Gradio runs handlers in its worker threads, where a
            # grad mode set here would not hold), without switching autograd off for the whole process
            return load_generator(path, channels_last=True).eval().requires_grad_(False)
        except CheckpointError as err:
            raise CheckpointError(f"{key}: {err}") from err

    for name, value in (("max_lr_pixels", max_lr_pixels), ("max_pixels", max_pixels)):
        if not (isinstance(value, int) and value >= 1):
            raise ConfigError(f"{name}={value}: must be an integer >= 1")
    ckpt = resolve_checkpoint(checkpoint)
    generator = load(ckpt, "checkpoint")
    if not generator.uses_prior:
        raise ConfigError(f"checkpoint={ckpt}: this generator has no prior to paint (conditioning=none)")
    try:
        fid_path = fidelity_checkpoint(checkpoint_fidelity, ckpt)
    except ConfigError:
        fid_path = None  # no fidelity end beside the checkpoint: the strength controls are off
        log.info("no generator_fidelity.pth beside %s: texture strength off", ckpt)
    fidelity = load(fid_path, "checkpoint_fidelity") if fid_path else None
    seg = None
    if segmenter:
        names, colors = class_names_of(generator)
        seg = SegmenterPrior(
            "segmenter",
            segmenter,
            mode="online",
            weights_key="segmenter",
            num_classes=len(names),
            class_names=names,
            colors=colors,
        )
    choice = choose(segmenter_engine, "auto", torch.device("cpu"))
    segment = SegmentOptions(precision=choice.precision, engine=engine_for(choice))
    models = AppModels(generator, fidelity, seg, max_lr_pixels, max_pixels, segment, estimator)
    if seg is not None:  # export and compile the segmenter's graph now, not in the first user's request
        seg.image_map(torch.full((1, 3, 16, 16), 0.5), generator.scale, segment=segment)
    log.info(
        "checkpoint %s, fidelity %s, segmenter %s (%s %s)", ckpt, fid_path, segmenter, choice.engine, choice.precision
    )
    return models


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve(
    app: PainterApp, host: str = "127.0.0.1", port: int = 7860, block: bool = True, auth: tuple[str, str] | None = None
):
    """Start the page on ``host:port`` (0 = a free port), print its URL; one computation at a time (two
    CPU cores are busy enough), sessions queue; ``auth``: ``(user, password)`` the page asks for. Returns the
    Gradio app and its URL when ``block`` is False."""
    port = port or free_port(host)
    demo = app.blocks()
    demo.queue(default_concurrency_limit=1)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, show_error=False, auth=auth)
    url = f"http://{host}:{port}/"
    print(f"sftgan-app: serving on {url}", flush=True)
    if block:
        demo.block_thread()
    return demo, url
