"""The named choices of the method, defined once: the networks validate against them and the config
schemas (``config.py``) type their keys with them, so a typo fails at composition and in code alike."""

from __future__ import annotations

from enum import Enum


class Conditioning(str, Enum):
    """How the prior enters the generator (``models.generator``)."""

    sft = "sft"  # per-pixel gamma/beta (the paper)
    film = "film"  # the same layer on the spatially pooled condition: one gamma/beta per image
    concat = "concat"  # condition maps concatenated to the features
    none = "none"  # no prior: SRResNet


class GanType(str, Enum):
    """GAN formulations (``losses.gan``)."""

    vanilla = "vanilla"
    lsgan = "lsgan"
    ragan = "ragan"
    wgan_gp = "wgan_gp"
    hinge = "hinge"


class PixelType(str, Enum):
    """Pixel losses (``losses.perceptual.pixel_loss``)."""

    l1 = "l1"
    mse = "mse"


class StoreFormat(str, Enum):
    """How prepared data is stored (``data.store_format``, ``sftgan-prepare format=``)."""

    mmap = "mmap"  # one memory-mapped store per split on a local (or shared) file system
    litdata = "litdata"  # LitData chunks, streamed from a folder or object storage (s3://, gs://)


class Layout(str, Enum):
    """How a split's files are laid out (``data.train.layout``, ``sftgan-prepare input.layout``; ``data/splits.py``)."""

    demo = "demo"  # the embedded demo set, generated on first use
    folder = "folder"  # a folder of HR images, optional parallel label maps or priors
    ost = "ost"  # one folder per class (the OST set)
    paired = "paired"  # HR and given LR images side by side (real pairs for training; benchmark sets)


def choice(enum: type[Enum], value, key: str) -> str:
    """``value`` (a string or a member) as the plain string of a member of ``enum``; a ``ValueError`` naming ``key`` otherwise."""
    value = getattr(value, "value", value)
    allowed = [m.value for m in enum]
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not one of {', '.join(allowed)}")
    return str(value)


#: ``torch.compile``'s modes (``module.compile_mode``, predict / eval ``compile_mode``)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
