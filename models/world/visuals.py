"""What the objects of the synthetic world look like, and how one is drawn into a frame.

Each sound class owns one visual object class (shape, colour, texture), so a network can learn
which object makes which sound. Shapes touch all four sides of their box, so the box a frame is
drawn with is exactly the object's bounding box.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SHAPES = ("circle", "square", "triangle-up", "triangle-down", "diamond", "hexagon", "ellipse", "tall-rect")
TEXTURES = ("solid", "stripes", "checker", "dots")


@dataclass(frozen=True)
class ObjectLook:
    """Appearance of one visual object class.

    Attributes:
        shape: one of SHAPES.
        rgb: base colour.
        texture: one of TEXTURES; the pattern darkens the base colour in places.
        aspect: width / height of the box.
    """

    shape: str
    rgb: tuple[int, int, int]
    texture: str
    aspect: float = 1.0


# Index i is the look of sound class i (models.world.sounds.SOUND_CLASSES).
OBJECT_LOOKS: tuple[ObjectLook, ...] = (
    ObjectLook("circle", (220, 40, 40), "solid"),  # organ
    ObjectLook("triangle-up", (230, 210, 40), "stripes"),  # chirp-up
    ObjectLook("triangle-down", (240, 140, 30), "stripes"),  # chirp-down
    ObjectLook("hexagon", (40, 90, 230), "checker"),  # siren
    ObjectLook("square", (110, 120, 170), "solid"),  # engine-am4
    ObjectLook("square", (30, 160, 150), "stripes"),  # engine-am7
    ObjectLook("tall-rect", (140, 90, 40), "checker", aspect=0.6),  # knock
    ObjectLook("circle", (235, 235, 235), "dots"),  # hiss
    ObjectLook("ellipse", (240, 120, 180), "solid", aspect=1.5),  # speech
    ObjectLook("diamond", (200, 170, 50), "dots"),  # bell
    ObjectLook("triangle-up", (40, 190, 70), "dots"),  # trill
    ObjectLook("diamond", (150, 60, 200), "stripes"),  # beep
)


def shape_mask(shape: str, width: int, height: int) -> np.ndarray:
    """Boolean mask (height, width) of ``shape`` filling its box edge to edge."""
    mask = np.zeros((height, width), np.uint8)
    w, h = width - 1, height - 1
    if shape in ("square", "tall-rect"):
        mask[:] = 1
    elif shape in ("circle", "ellipse"):
        yy, xx = np.mgrid[0:height, 0:width]
        cx, cy = w / 2.0, h / 2.0
        mask[((xx - cx) / max(cx, 0.5)) ** 2 + ((yy - cy) / max(cy, 0.5)) ** 2 <= 1.0] = 1
        # The row/column through the centre always reaches the box edges.
        mask[int(round(cy)), :] = 1
        mask[:, int(round(cx))] = 1
    else:
        points = {
            "triangle-up": [(w / 2, 0), (w, h), (0, h)],
            "triangle-down": [(0, 0), (w, 0), (w / 2, h)],
            "diamond": [(w / 2, 0), (w, h / 2), (w / 2, h), (0, h / 2)],
            "hexagon": [(w / 4, 0), (3 * w / 4, 0), (w, h / 2), (3 * w / 4, h), (w / 4, h), (0, h / 2)],
        }[shape]
        cv2.fillPoly(mask, [np.round(np.array(points)).astype(np.int32)], 1)
    return mask.astype(bool)


def texture_pattern(texture: str, width: int, height: int, period: int) -> np.ndarray:
    """Boolean (height, width): True where the texture darkens the object."""
    yy, xx = np.mgrid[0:height, 0:width]
    half = max(period // 2, 1)
    if texture == "solid":
        return np.zeros((height, width), bool)
    if texture == "stripes":
        return (xx + yy) // half % 2 == 1
    if texture == "checker":
        return (xx // half + yy // half) % 2 == 1
    if texture == "dots":
        return ((xx % period - half) ** 2 + (yy % period - half) ** 2) <= (period / 4) ** 2
    raise ValueError(f"unknown texture {texture!r}; expected one of {TEXTURES}")


def draw_object(frame: np.ndarray, id_map: np.ndarray, look: ObjectLook, box: tuple[int, int, int, int], object_id: int) -> None:
    """Paint one object into ``frame`` (H, W, 3) uint8 RGB and ``id_map`` (H, W) int32, in place.

    Args:
        box: integer (x0, y0, x1, y1), x1/y1 exclusive; may extend past the frame (clipped here).
        object_id: written into ``id_map`` where the object is the topmost thing drawn.
    """
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    if width <= 0 or height <= 0:
        return
    mask = shape_mask(look.shape, width, height)
    dark = texture_pattern(look.texture, width, height, period=max(6, min(width, height) // 4))
    patch = np.empty((height, width, 3), np.uint8)
    base = np.array(look.rgb, np.float64)
    patch[:] = base.astype(np.uint8)
    patch[dark] = (base * 0.5).astype(np.uint8)
    fh, fw = frame.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, fw), min(y1, fh)
    if cx0 >= cx1 or cy0 >= cy1:
        return
    sub = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
    m = mask[sub]
    frame[cy0:cy1, cx0:cx1][m] = patch[sub][m]
    id_map[cy0:cy1, cx0:cx1][m] = object_id
