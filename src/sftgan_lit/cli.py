"""Console scripts."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _conf_dir(prog: str) -> Path:
    conf_dir = Path(__file__).resolve().parents[2] / "conf"
    if not conf_dir.is_dir():
        sys.exit(f"{prog}: config folder not found at {conf_dir}; run from a source checkout (pip install -e .)")
    return conf_dir


def train_main() -> None:
    """``sftgan-train``: ``train.py`` with the package's bundled ``conf/`` (Hydra overrides as arguments)."""
    import hydra
    from omegaconf import DictConfig

    from .train import train

    conf_dir = _conf_dir("sftgan-train")

    @hydra.main(version_base="1.3", config_path=str(conf_dir), config_name="train")
    def _main(cfg: DictConfig) -> float | None:
        metrics, _ = train(cfg)
        # the return value is what Hydra sweepers (Optuna) optimise
        key = cfg.get("optimized_metric")
        if key and key not in metrics:
            logging.getLogger("sftgan_lit.train").warning("optimized_metric=%s was not logged (available: %s)", key, sorted(metrics))
        return metrics.get(key) if key else None

    _main()


def prepare_from_config(cfg) -> int:
    """``sftgan-prepare``'s work for a composed ``conf/prepare.yaml``; returns the exit code (1 if any file failed)."""
    from hydra.utils import instantiate

    from .data.prepare import prepare
    from .data.sources import items_from_spec

    prior = instantiate(cfg.prior)
    spec = cfg.input
    if spec.layout not in ("folder", "ost"):
        raise ValueError(f"input.layout={spec.layout!r} is not folder or ost")
    items = items_from_spec(spec, prior.class_names, background=cfg.background and spec.layout == "folder", key="input")
    report = prepare(
        items, cfg.out, prior, background=cfg.background, modcrop_to=cfg.modcrop, min_size=cfg.min_size,
        scale=cfg.scale, max_pixels=cfg.max_pixels, limit=cfg.limit, progress=cfg.progress, device=cfg.device,
    )  # fmt: skip
    print(f"sftgan-prepare: {report.store}: {report.written} written, {report.skipped_done} already done, {report.total} in store")
    for name, reason in report.failures.items():
        print(f"sftgan-prepare: FAILED {name}: {reason}", file=sys.stderr)
    if report.failures:
        print(f"sftgan-prepare: {len(report.failures)} of {len(items)} files failed", file=sys.stderr)
    return 0 if report.ok else 1


def prepare_main() -> None:
    """``sftgan-prepare``: Hydra overrides as arguments (``conf/prepare.yaml``); exit code 1 if any file failed."""
    import hydra

    @hydra.main(version_base="1.3", config_path=str(_conf_dir("sftgan-prepare")), config_name="prepare")
    def _main(cfg) -> None:
        code = prepare_from_config(cfg)
        if code:
            sys.exit(code)

    _main()


def inspect_main(argv: list[str] | None = None) -> int:
    """``sftgan-inspect CKPT``: what a generator checkpoint holds (variant, config, parameter count)."""
    from .checkpoints import CheckpointError, load_generator

    parser = argparse.ArgumentParser(prog="sftgan-inspect", description=inspect_main.__doc__)
    parser.add_argument("checkpoint", type=Path)
    args = parser.parse_args(argv)
    try:
        g = load_generator(args.checkpoint)
    except (CheckpointError, FileNotFoundError) as err:
        print(f"sftgan-inspect: {err}", file=sys.stderr)
        return 1
    info = {
        "checkpoint": str(args.checkpoint),
        "parameters": sum(p.numel() for p in g.parameters()),
        "config": g.config_dict(),
    }
    print(json.dumps(info, indent=2))
    return 0
