"""Box sidecars (models/datasets/formats/video_boxes.py): both forms, both units, "no source", one-line errors."""
from __future__ import annotations

import numpy as np
import pytest

from models.datasets.formats._common import FormatError
from models.datasets.formats.video_boxes import parse_source_boxes, read_source_boxes, sidecar_path, write_source_boxes


def test_per_video_pixels():
    b = parse_source_boxes({"units": "pixels", "width": 200, "height": 100, "boxes": [[20, 10, 100, 60]], "objects": 3})
    np.testing.assert_allclose(b.at(123.0), [[0.1, 0.1, 0.5, 0.6]])
    assert b.objects_at(0.0) == 3 and not b.no_source_over(0, 5)


def test_per_frame_step_function_and_no_source():
    b = parse_source_boxes({"frames": [{"t": 1.0, "boxes": []}, {"t": 2.0, "boxes": [[0.1, 0.2, 0.3, 0.4]], "objects": 4},
                                       {"t": 3.0, "boxes": []}]})
    assert b.at(0.5) is None and b.over(0.5, 1.5) is None  # before the first entry: unlabelled
    assert len(b.at(1.5)) == 0 and len(b.at(2.5)) == 1 and b.objects_at(2.5) == 4 and len(b.at(9.0)) == 0
    assert b.no_source_over(1.0, 2.0) and not b.no_source_over(1.5, 2.5) and b.no_source_over(3.0, 4.0)


@pytest.mark.parametrize("data, match", [
    ({"boxes": [[0.5, 0.1, 0.2, 0.4]]}, "x0 < x1"),
    ({"units": "pixels", "boxes": []}, "width and height"),
    ({"units": "cm", "boxes": []}, "'normalized' or 'pixels'"),
    ({"boxes": [], "frames": []}, "exactly one"),
    ({"frames": [{"t": 2.0, "boxes": []}, {"t": 1.0, "boxes": []}]}, "after 2.0"),
    ({"boxes": [[0, 0, 1]]}, "4 numbers"),
    ({"boxes": [], "objects": 0}, "positive integer"),
])
def test_errors_name_expected_and_found(data, match):
    with pytest.raises(FormatError, match=match):
        parse_source_boxes(data)


def test_write_and_read_back(tmp_path):
    video = tmp_path / "clip.mp4"
    assert read_source_boxes(video) is None
    path = write_source_boxes(video, frames=[(0.0, []), (0.5, [[0.1, 0.1, 0.2, 0.2]])], objects=3)
    assert path == sidecar_path(video) == tmp_path / "clip.boxes.json"
    b = read_source_boxes(video)
    assert len(b.at(0.2)) == 0 and len(b.at(0.6)) == 1 and b.objects_at(0.6) == 3
    path.write_text("{broken")
    with pytest.raises(FormatError, match="expected JSON"):
        read_source_boxes(video)
