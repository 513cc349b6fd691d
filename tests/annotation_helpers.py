"""Annotation results as Label Studio's labeling UI writes them."""

from __future__ import annotations


def box(region_id: str, x: float, y: float, w: float, h: float, label: str, width: int, height: int) -> dict:
    """A RectangleLabels region ('label' on 'image'), in percent of the image, as the UI saves it."""
    return {
        "id": region_id,
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]},
    }
