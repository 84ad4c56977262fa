"""Data: demo scenes, layouts, the prepared and streaming stores, aligned transforms, datasets and the datamodule."""

from .datamodule import SFTGANDataModule, collate
from .dataset import ORIGINAL_SCALES, PairedDataset, TripletDataset
from .demo import DemoConfig, default_cache_dir, generate_demo
from .io import ImageError, read_image, read_label_map
from .prepare import PrepareReport, prepare
from .readers import FileReader, StoreReader
from .sources import SourceItem, folder_items, ost_items, paired_items
from .store import Store, StoreError, StoreWriter, dequantize_probs, quantize_probs

__all__ = [
    "ORIGINAL_SCALES",
    "DemoConfig",
    "FileReader",
    "ImageError",
    "PairedDataset",
    "PrepareReport",
    "SFTGANDataModule",
    "SourceItem",
    "Store",
    "StoreError",
    "StoreReader",
    "StoreWriter",
    "TripletDataset",
    "collate",
    "default_cache_dir",
    "dequantize_probs",
    "folder_items",
    "generate_demo",
    "ost_items",
    "paired_items",
    "prepare",
    "quantize_probs",
    "read_image",
    "read_label_map",
]
