"""SFTGAN nodes for ComfyUI (``custom_nodes/comfyui_sftgan``): ComfyUI reads the two mappings below.

Importing the pack also registers SFTGAN with spandrel, so ComfyUI's stock "Load Upscale Model" and
"Upscale Image (using Model)" accept this package's files too (with the caveats in the docs' ComfyUI page).
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
