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
        peak_radius: its radius in pixels on a 240-line frame (scaled with the frame's height).
        top_k: label lines drawn.
        font_scale: OpenCV Hershey font scale; None: sized to the frame, ``text_lines`` lines of
            text to its height (0.4 on a 240-line frame, 1.8 on a 1080-line one).
        text_lines: with ``font_scale=None``, how many text lines fit the frame's height.
    """

    alpha: float = 0.6
    colormap: int = cv2.COLORMAP_INFERNO
    show_without_source: bool = False
    draw_peak: bool = True
    peak_radius: int = 8
    top_k: int = 3
    font_scale: float | None = None
    text_lines: float = 20.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"OverlayConfig.alpha: expected a value in [0, 1], found {self.alpha!r}")
        if self.font_scale is not None and not self.font_scale > 0:
            raise ValueError(f"OverlayConfig.font_scale: expected a scale > 0 or None (sized to the frame), "
                             f"found {self.font_scale!r}")
        if not self.text_lines >= 1:
            raise ValueError(f"OverlayConfig.text_lines: expected >= 1, found {self.text_lines!r}")


_TEXT = (255, 255, 255)
_ACTIVE = (255, 210, 60)
_PEAK = (0, 255, 255)
_OUTLINE = (0, 0, 0)  # a rim under the letters, on a darkened box: light text reads on any picture
_FONT = cv2.FONT_HERSHEY_SIMPLEX
#: Pixels one text line takes per unit of font scale (Hershey simplex: ~22 px tall plus spacing),
#: for sizing the font to the frame.
_LINE_PER_SCALE = 30.0


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
        # text sized to the frame: the same share of its height at any resolution
        auto = self.height / (config.text_lines * _LINE_PER_SCALE)
        self.font_scale = float(config.font_scale) if config.font_scale is not None else max(0.3, auto)
        self._thickness = max(1, int(round(self.font_scale * 1.2)))
        self._outline = self._thickness + max(1, int(round(self.font_scale * 1.5)))
        self._margin = max(2, int(round(self.height / 120)))
        (_, tall), base = cv2.getTextSize("Ag", _FONT, self.font_scale, self._outline)
        self._pad = max(1, int(round(self.font_scale * 3)))
        self._ascent, self._descent = tall, base
        self._line = tall + base + 2 * self._pad + max(1, self._margin // 4)  # one box, then a gap
        self._peak_radius = max(1, int(round(config.peak_radius * max(1.0, self.height / 240.0))))

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
            thickness = max(1, self._peak_radius // 8)
            cv2.circle(out, (int(px), int(py)), self._peak_radius, _OUTLINE, thickness + 2, cv2.LINE_AA)
            cv2.circle(out, (int(px), int(py)), self._peak_radius, _PEAK, thickness, cv2.LINE_AA)

    def _put(self, out: np.ndarray, text: str, x: int, top: int, colour) -> None:
        """One line of text in the line box starting at row ``top``, on a translucent dark box
        (the picture shows through at a quarter of its brightness) and outlined: light letters
        read on white and on black."""
        tw = cv2.getTextSize(text, _FONT, self.font_scale, self._outline)[0][0]
        pad = self._pad
        x0, y0 = max(0, x - pad), max(0, top)
        x1, y1 = min(self.width, x + tw + pad), min(self.height, top + self._ascent + self._descent + 2 * pad)
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] >>= 2  # in place, no allocation
        y = top + pad + self._ascent  # the baseline
        cv2.putText(out, text, (x, y), _FONT, self.font_scale, _OUTLINE, self._outline, cv2.LINE_AA)
        cv2.putText(out, text, (x, y), _FONT, self.font_scale, colour, self._thickness, cv2.LINE_AA)

    def _draw_text(self, out: np.ndarray, top: Sequence, active: Sequence, heatmap: Heatmap | None,
                   stream_time: float | None) -> None:
        cfg = self.config
        line, m = self._line, self._margin
        box = self._ascent + self._descent + 2 * self._pad
        bar_width = max(20, self.width // 4)
        y = m // 2  # the current line's top
        for item in list(top)[: cfg.top_k]:
            score = float(np.clip(item.score, 0.0, 1.0))
            y0, y1 = y + self._pad, y + box - self._pad
            cv2.rectangle(out, (m, y0), (m + bar_width, y1), _OUTLINE, max(1, self._thickness))
            if score > 0:
                cv2.rectangle(out, (m, y0), (m + int(bar_width * score), y1), _ACTIVE, -1)
            self._put(out, f"{item.label} {score:.2f}", 2 * m + bar_width, y, _TEXT)
            y += line
        for event in active:
            text = f"* {event.label}"
            if stream_time is not None:
                text += f" {max(0.0, stream_time - event.onset):.1f}s"
            self._put(out, text, m, y, _ACTIVE)
            y += line
        if heatmap is not None and not heatmap.has_source:
            self._put(out, "no source on screen", m, self.height - box - m // 2, _TEXT)
