"""Lightning glue: thin modules over the plain networks in ``sftgan_lit.models``."""

from .sftgan_module import SFTGANModule

__all__ = ["SFTGANModule"]
