"""The typed data config: ``data.`` is ``config.DataSchema`` (a typo or a wrong type fails at composition, as
``loss.`` and ``sft.`` do), each split is its layout's class (``data.splits``), and a key of another layout
is refused in one line naming it."""

from __future__ import annotations

import pytest
from hydra.errors import HydraException
from hydra.utils import instantiate

from sftgan_lit.config import ConfigError
from sftgan_lit.data import SFTGANDataModule
from sftgan_lit.data.splits import DemoSplit, FolderSplit, OSTSplit, PairedSplit, split_from_config
from sftgan_lit.priors import LabelPrior

from helpers import compose


@pytest.mark.parametrize(
    "override",
    [
        "data.batch_sise=4",  # a typo at the top
        "data.train.imgs=/x",  # a typo inside a split
        "data.batch_size=abc",  # a wrong type
        "data.train.layout=tiles",  # not a layout
        "data.store_format=zarr",  # not a store format
        "data.degradation.blur=3",  # bicubic has no such key
        "data.demo.size=big",
    ],
)
def test_a_data_typo_or_wrong_type_fails_at_composition(override):
    with pytest.raises(HydraException):
        compose([override])


@pytest.mark.parametrize(
    "data,split_type",
    [("demo", DemoSplit), ("folder", FolderSplit), ("ost", OSTSplit), ("ablation", DemoSplit), ("context", DemoSplit)],
)
def test_every_data_option_composes_into_its_layout(data, split_type):
    # data=ost's background mix needs its folder (a section without it is refused: next test)
    cfg = compose([f"data={data}", *(["data.train.background.images=/bg"] if data == "ost" else [])])
    dm_splits = {k: split_from_config(cfg.data[k], f"data.{k}") for k in ("train", "val", "test")}
    assert type(dm_splits["train"]) is split_type
    if data == "ost":
        assert type(dm_splits["val"]) is PairedSplit and dm_splits["train"].background == "/bg"


def test_a_key_of_another_layout_is_refused_naming_it():
    with pytest.raises(ConfigError, match=r"^data\.train\.root=/x: not a key of layout folder \(its keys: "):
        split_from_config({"layout": "folder", "images": "/a", "root": "/x"}, "data.train")
    cfg = compose(["data=folder", "data.train.images=/a", "data.train.hr=/b", "data.store_root=/s"])
    with pytest.raises(Exception, match=r"data\.train\.hr=/b: not a key of layout folder"):
        instantiate(cfg.data, prior=LabelPrior())


def test_required_keys_are_named_when_missing(tmp_path):
    # data=ost leaves the OST root, the background folder and the stores to the user
    with pytest.raises(ConfigError, match=r"data\.train\.background\.images is not set"):
        split_from_config({"layout": "ost", "root": "/o", "background": {"images": None}}, "data.train")
    dm = SFTGANDataModule(LabelPrior(), train={"layout": "ost"}, store_root=str(tmp_path))
    with pytest.raises(
        ConfigError, match=r"^data\.train\.root is not set: give the folder with one subfolder per class"
    ):
        dm.prepare_data()
    dm = SFTGANDataModule(LabelPrior(), train={"layout": "folder", "images": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"^data\.store_root is not set"):
        dm.prepare_data()


def test_a_paired_training_split_is_read_from_files_not_streamed():
    SFTGANDataModule(LabelPrior(), train={"layout": "paired", "hr": "/h", "lr": "/l"})  # trains (data=paired)
    with pytest.raises(
        ConfigError, match=r"data\.store_format=litdata: a paired training split .* set data.store_format=mmap"
    ):
        SFTGANDataModule(LabelPrior(), train={"layout": "paired", "hr": "/h", "lr": "/l"}, store_format="litdata")


def test_a_null_section_takes_a_mapping_from_the_command_line(tmp_path):
    """``data.val`` (null in data=folder), ``data.gpu_augment`` and ``data.storage_options`` (null by default) set as mappings on the
    command line, as the docs show: they compose and build (a typed null node could not take them)."""
    cfg = compose(
        [
            "data=folder",
            f"data.train.images={tmp_path}",
            f"data.store_root={tmp_path / 'stores'}",
            f"data.val={{layout: paired, hr: {tmp_path / 'hr'}, lr: {tmp_path / 'lr'}}}",
            "data.gpu_augment={crop: 32}",
            "data.storage_options={endpoint_url: http://127.0.0.1:9}",
        ]
    )
    dm = instantiate(cfg.data, prior=LabelPrior())
    assert dm.splits["val"] == PairedSplit("data.val", hr=str(tmp_path / "hr"), lr=str(tmp_path / "lr"))
    assert dm.gpu_augment is not None
    with pytest.raises(Exception, match=r"data\.val\.layout=tiles: must be one of demo, folder, ost, paired"):
        instantiate(compose(["data.val.layout=tiles"]).data, prior=LabelPrior())
