"""Task models for the four patterns of recurrent networks."""

from rnnkit.models.base import IGNORE_INDEX, ModelOutput

__all__ = ["ModelOutput", "IGNORE_INDEX"]
