"""Console scripts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def train_main() -> None:
    """``sftgan-train``: ``train.py`` with the package's bundled ``conf/`` (Hydra overrides as arguments)."""
    import hydra
    from omegaconf import DictConfig

    from .train import train

    conf_dir = Path(__file__).resolve().parents[2] / "conf"
    if not conf_dir.is_dir():
        sys.exit(f"sftgan-train: config folder not found at {conf_dir}; run from a source checkout (pip install -e .)")

    @hydra.main(version_base="1.3", config_path=str(conf_dir), config_name="train")
    def _main(cfg: DictConfig) -> None:
        train(cfg)

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
