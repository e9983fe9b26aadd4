"""Drawing a hop's result onto a camera frame (OpenCV): the heatmap, its peak, labels, events.

The heatmap is blended in with a colour map whose brightness rises with the value (inferno:
black → purple → orange → yellow), weighted by the value itself, so cold regions leave the
picture alone and the brightest blended pixel sits at the map's peak. Frames are RGB uint8
throughout (OpenCV's colour maps come out BGR and are flipped once, at construction).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from models.core.live import Heatmap

__all__ = ["Overlay", "OverlayConfig"]


@dataclass(frozen=True)
class OverlayConfig:
    """How the overlay looks.

    Attributes:
        alpha: heatmap opacity at value 1 (a pixel's weight is ``alpha * value``).
        colormap: an OpenCV colour map id (``cv2.COLORMAP_*``); keep one that brightens with the value.
        show_without_source: draw the heatmap even when its score is below the localizer's threshold.
        draw_peak: a circle around the peak.
        peak_radius: its radius in pixels.
        top_k: label lines drawn.
        font_scale: OpenCV Hershey font scale (0.4 reads well on 224-pixel frames).
    """

    alpha: float = 0.6
    colormap: int = cv2.COLORMAP_INFERNO
    show_without_source: bool = False
    draw_peak: bool = True
    peak_radius: int = 8
    top_k: int = 3
    font_scale: float = 0.4

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"OverlayConfig.alpha: expected a value in [0, 1], found {self.alpha!r}")


_TEXT = (255, 255, 255)
_ACTIVE = (255, 210, 60)
_PEAK = (0, 255, 255)


class Overlay:
    """Draws on frames of one size with buffers allocated once. One owner (not thread-safe).

    Args:
        height, width: frame size in pixels.
        config: looks.
    """

    def __init__(self, height: int, width: int, config: OverlayConfig = OverlayConfig()) -> None:
        self.height, self.width = int(height), int(width)
        self.config = config
        lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], config.colormap)  # (256, 1, 3) BGR
        self._lut = np.ascontiguousarray(lut[:, 0, ::-1]).astype(np.float32)  # (256, 3) RGB
        shape = (self.height, self.width)
        self._map = np.zeros(shape, np.float32)  # (H, W) heatmap at frame size
        self._index = np.zeros(shape, np.intp)  # (H, W) colour-map row
        self._weight = np.zeros(shape + (1,), np.float32)  # (H, W, 1) alpha * value
        self._colour = np.zeros(shape + (3,), np.float32)  # (H, W, 3)
        self._blend = np.zeros(shape + (3,), np.float32)  # (H, W, 3)

    def draw(self, frame: np.ndarray, heatmap: Heatmap | None = None, top: Sequence = (), active: Sequence = (),
             out: np.ndarray | None = None, *, stream_time: float | None = None) -> np.ndarray:
        """Draw onto a copy of ``frame``.

        Args:
            frame: (H, W, 3) uint8 RGB.
            heatmap: its ``map`` (h, w) float in [0, 1] is resized to (H, W) when it differs;
                ``peak`` is in map pixels. None: no heatmap.
            top: objects with ``label`` and ``score`` (``HopResult.top``), drawn as bars.
            active: objects with ``label`` and ``onset`` (``HopResult.active``).
            out: (H, W, 3) uint8 to draw into (may be ``frame`` itself); default a new array.
            stream_time: when given, active events show how long they have lasted.

        Returns:
            ``out``.
        """
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"Overlay.draw: expected a ({self.height}, {self.width}, 3) uint8 RGB frame, "
                             f"found {frame.dtype} {frame.shape}")
        if out is None:
            out = frame.copy()
        elif out is not frame:
            np.copyto(out, frame)
        cfg = self.config
        if heatmap is not None and (heatmap.has_source or cfg.show_without_source):
            self._blend_heatmap(out, heatmap)
        self._draw_text(out, top, active, heatmap, stream_time)
        return out

    def _blend_heatmap(self, out: np.ndarray, heatmap: Heatmap) -> None:
        m = np.asarray(heatmap.map, dtype=np.float32)
        px, py = heatmap.peak
        if m.shape != (self.height, self.width):
            sx, sy = self.width / m.shape[1], self.height / m.shape[0]
            cv2.resize(m, (self.width, self.height), dst=self._map, interpolation=cv2.INTER_LINEAR)
            px, py = int((px + 0.5) * sx), int((py + 0.5) * sy)
            m = self._map
        np.clip(m, 0.0, 1.0, out=self._map)
        # colour = lut[round(255 * value)], weight = alpha * value; out = frame + weight * (colour - frame)
        np.multiply(self._map, 255.0, out=self._weight[..., 0])
        np.rint(self._weight[..., 0], out=self._weight[..., 0])
        self._index[...] = self._weight[..., 0]
        np.take(self._lut, self._index, axis=0, out=self._colour, mode="clip")  # unbuffered
        np.multiply(self._map, self.config.alpha, out=self._weight[..., 0])
        self._blend[...] = out
        np.subtract(self._colour, self._blend, out=self._colour)
        self._colour *= self._weight
        self._blend += self._colour
        np.rint(self._blend, out=self._blend)
        out[...] = self._blend
        if self.config.draw_peak:
            cv2.circle(out, (int(px), int(py)), self.config.peak_radius, _PEAK, 1, cv2.LINE_AA)

    def _draw_text(self, out: np.ndarray, top: Sequence, active: Sequence, heatmap: Heatmap | None,
                   stream_time: float | None) -> None:
        cfg = self.config
        scale = cfg.font_scale
        line = max(10, int(round(30 * scale)))
        bar_width = max(20, self.width // 4)
        y = line
        for item in list(top)[: cfg.top_k]:
            score = float(np.clip(item.score, 0.0, 1.0))
            cv2.rectangle(out, (4, y - line + 4), (4 + int(bar_width * score), y - 2), _ACTIVE, -1)
            cv2.putText(out, f"{item.label} {score:.2f}", (8 + bar_width, y - 3), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        _TEXT, 1, cv2.LINE_AA)
            y += line
        for event in active:
            text = f"* {event.label}"
            if stream_time is not None:
                text += f" {max(0.0, stream_time - event.onset):.1f}s"
            cv2.putText(out, text, (4, y - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, _ACTIVE, 1, cv2.LINE_AA)
            y += line
        if heatmap is not None and not heatmap.has_source:
            cv2.putText(out, "no source on screen", (4, self.height - 6), cv2.FONT_HERSHEY_SIMPLEX, scale, _TEXT, 1,
                        cv2.LINE_AA)
