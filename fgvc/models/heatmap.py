"""Drawing a class activation map over a photo: OpenCV's JET colour map, blended, as uint8 RGB.

    overlay = overlay_heatmap(rgb, cam)        # rgb: (H, W, 3) uint8; cam: any size, values in [0, 1]

OpenCV draws in BGR: the colour map is converted to RGB here, so hot (1) comes out red and cold (0) blue.
"""

from __future__ import annotations

import cv2
import numpy as np


def overlay_heatmap(image: np.ndarray, cam: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """Blend ``cam`` (values in [0, 1], any size) over the uint8 RGB ``image`` with the JET colour map.

    Hot (1) comes out red and cold (0) blue in the returned uint8 RGB array of the image's size.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image has shape {image.shape}; expected (H, W, 3) RGB")
    cam = cv2.resize(np.clip(cam, 0, 1).astype(np.float32), (image.shape[1], image.shape[0]))
    heatmap = cv2.cvtColor(cv2.applyColorMap(np.uint8(255 * cam), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    blended = image_weight * image.astype(np.float32) + (1 - image_weight) * heatmap.astype(np.float32)
    return np.clip(blended, 0, 255).astype(np.uint8)
