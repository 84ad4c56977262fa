"""Loggers whose package is an install extra (``logger=tensorboard``): built here so that a missing one is a
one-line configuration error naming the extra, not Lightning's import error mid-set-up."""

from __future__ import annotations


def tensorboard(**kwargs):
    """``lightning.pytorch.loggers.TensorBoardLogger(**kwargs)``, once the ``tensorboard`` extra is there.

    Args:
        **kwargs: ``TensorBoardLogger``'s arguments (``save_dir``, ``name``, ...; ``conf/logger/tensorboard.yaml``).

    Returns:
        The logger.
    """
    from lightning.pytorch.loggers import TensorBoardLogger

    from ..extras import require

    require("tensorboard", "logger=tensorboard")
    return TensorBoardLogger(**kwargs)
