"""Model cards for exported SFTGAN files: OpenModelDB's fields as JSON, and a README.md with the same facts,
the prior's classes and colours, and how to run the files with this package, spandrel and onnxruntime."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

from ..files import atomic_write_bytes
from ..models import architecture_of

FORMATS = {".safetensors": ("pytorch", "safetensors"), ".pth": ("pytorch", "pth"), ".onnx": ("onnx", "onnx")}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_card(
    pipeline,
    files: list[Path],
    name: str,
    author: str = "unknown",
    license: str = "unknown",
    dataset: str = "unknown",
    description: str = "",
) -> dict:
    """OpenModelDB's model fields for ``pipeline`` and its exported ``files`` (resources with size and sha256)."""
    g = pipeline.generator
    cfg = g.config
    arch = architecture_of(g)
    training = g.record.get("training") or {}
    resources = []
    for path in files:
        platform, kind = FORMATS.get(path.suffix, ("other", path.suffix.lstrip(".")))
        resources.append(
            {
                "platform": platform,
                "type": kind + ("-fp16" if path.stem.endswith("_fp16") else ""),
                "size": path.stat().st_size,
                "sha256": sha256(path),
                "urls": [],
                "file": path.name,
            }
        )
    return {
        "name": name,
        "author": author,
        "license": license,
        "tags": ["sftgan", "semantic-prior", "pretrained", "general-upscaler"],
        "description": description
        or (
            f"{arch.name} x{cfg.scale}: super-resolution conditioned on a categorical prior ({pipeline.prior_type}) "
            f"over {len(pipeline.class_names)} classes"
            + (f" and {len(pipeline.channels)} continuous channels" if pipeline.channels else "")
            + " through spatial feature transform layers."
        ),
        "date": date.today().isoformat(),
        "architecture": arch.name.lower(),
        "size": arch.tags(cfg),
        "scale": cfg.scale,
        "inputChannels": cfg.in_channels,
        "outputChannels": cfg.out_channels,
        "resources": resources,
        "trainingIterations": training.get("optimizer_steps"),
        "trainingBatchSize": training.get("batch_size"),
        "dataset": dataset,
        "pretrainedModelG": training.get("init_generator"),
        "sftgan_lit": {
            "prior": pipeline.prior_type,
            "class_names": pipeline.class_names,
            "colors": pipeline.colors,
            "override": pipeline.override,
            "remap": pipeline.remap,
            # the continuous channels after the classes: each channel's record, and where the file's values come from
            "continuous": [
                {
                    **c.record(),
                    "source": "fixed" if c.name in pipeline.continuous or pipeline.estimator is None else "estimator",
                    "value": pipeline.continuous.get(c.name, c.default)
                    if c.name in pipeline.continuous or pipeline.estimator is None
                    else None,
                }
                for c in pipeline.channels
            ],
            "conditioning": str(cfg.conditioning),
            "variant": g.record.get("variant"),
            "package_version": g.record.get("package_version"),
            "training": training,
        },
    }


def readme(card: dict) -> str:
    """A README.md with the card's facts, the classes and colours, and how to run each file."""
    extra = card["sftgan_lit"]
    files = {r["type"]: r["file"] for r in card["resources"]}
    weights = files.get("safetensors") or files.get("pth") or "MODEL.safetensors"
    onnx = files.get("onnx", "MODEL.onnx")
    classes = "\n".join(
        f"| {i} | {name} | rgb({', '.join(map(str, color))}) |"
        for i, (name, color) in enumerate(zip(extra["class_names"], extra["colors"] or [[0, 0, 0]] * 99))
    )
    edits = []
    if extra["override"]:
        edits.append(f"every pixel is given the class `{extra['override']}`")
    if extra["remap"]:
        edits.append("classes remapped: " + ", ".join(f"`{a}` -> `{b}`" for a, b in extra["remap"].items()))
    continuous = "".join(
        f"; {c['name']} ({c['unit']}, [{c['low']:g}, {c['high']:g}]): "
        + (f"{c['value']:g}" if c["source"] == "fixed" else "estimated from the LR")
        for c in extra.get("continuous", [])
    )
    resources = "\n".join(
        f"| `{r['file']}` | {r['platform']} {r['type']} | {r['size']:,} bytes | `{r['sha256']}` |"
        for r in card["resources"]
    )
    return f"""# {card["name"]}

{card["description"]}

| field | value |
| --- | --- |
| architecture | {card["architecture"]} ({extra["variant"]}, {", ".join(card["size"])}, conditioning {extra["conditioning"]}) |
| scale | x{card["scale"]} |
| input / output channels | {card["inputChannels"]} / {card["outputChannels"]} (RGB in [0, 1]) |
| prior | {extra["prior"]}{"; fixed edits: " + "; ".join(edits) if edits else ""}{continuous} |
| author / license | {card["author"]} / {card["license"]} |
| dataset | {card["dataset"]} |
| training iterations (optimizer steps, G and D) | {card["trainingIterations"]} |
| made with | sftgan_lit {extra["package_version"]} |

## Files

| file | format | size | sha256 |
| --- | --- | --- | --- |
{resources}

## Prior classes

| index | class | colour (prior maps, `predict.py prior_mask=`) |
| --- | --- | --- |
{classes}

## Run it

With sftgan_lit (tiled, any size, prior editing):

```python
from sftgan_lit.pipeline import load_pipeline
pipeline = load_pipeline("{weights}")         # prior + generator, eval mode
sr = pipeline(lr)                             # (N, 3, h, w) in [0, 1] -> (N, 3, {card["scale"]}h, {card["scale"]}w)
```

```bash
sftgan-predict images=photos/ checkpoint={weights} out=sr/
```

With spandrel (chaiNNer, ComfyUI and other spandrel-based tools):

```python
import spandrel
from sftgan_lit.inference.spandrel_support import install
install()
model = spandrel.ModelLoader().load_from_file("{weights}")
sr = model(lr)                                # (1, 3, h, w) in [0, 1] -> clamped SR
```

With onnxruntime (one input `input`, one output `output`, dynamic batch/height/width, height and width >= 2):

```python
import onnxruntime as ort
session = ort.InferenceSession("{onnx}")
sr = session.run(None, {{"input": lr_numpy}})[0]  # float32 (N, 3, h, w) in [0, 1]
```
"""


def write_model_card(card: dict, folder: Path, stem: str) -> tuple[Path, Path]:
    """``<folder>/<stem>.json`` (the card) and ``<folder>/README.md``, atomically."""
    json_path, readme_path = folder / f"{stem}.json", folder / "README.md"
    atomic_write_bytes(json_path, (json.dumps(card, indent=2) + "\n").encode())
    atomic_write_bytes(readme_path, readme(card).encode())
    return json_path, readme_path
