"""Render a scene of the synthetic world with its ground truth, and print how hard the world is.

    python -m apps.world_report --out out/world            # bench, first test seed, 30 s
    python -m apps.world_report --seed 200003 --seconds 60 --no-difficulty

Writes, for scene SEED:
    scene-SEED.mp4           the camera picture (boxes of sounding objects drawn unless --no-overlay)
                             with the scene's audio muxed in (48 kHz)
    scene-SEED.events.tsv    reference events, DCASE strong-label TSV, filename ``synthetic:SEED``
    scene-SEED.objects.jsonl one line per frame: time and every visible object (uid, class, box, sounding)
    difficulty.json          the world's difficulty figures (unless --no-difficulty)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from models.core.atomic import atomic_write_text
from models.core.events import write_strong_tsv
from models.io.media import AvFileWriter
from models.world import CLASS_NAMES, PRESETS, Scene, get_preset, split_seed
from models.world.evalsets import reference_events, single_event_windows

AUDIO_RATE = 48000


def draw_truth(frame: np.ndarray, objects) -> np.ndarray:
    """A copy of ``frame`` (H, W, 3) RGB with each sounding object's box and class drawn."""
    out = frame.copy()
    for obj in objects:
        if obj.sounding:
            x0, y0, x1, y1 = obj.box
            cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 255), 1)
            cv2.putText(out, CLASS_NAMES[obj.class_index], (x0, max(y0 - 3, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def render_scene(scene: Scene, seconds: float, out_dir: Path, overlay: bool) -> dict[str, Path]:
    """Write the scene's mp4, reference events and per-frame objects; return their paths."""
    c = scene.config
    stem = out_dir / f"scene-{scene.seed}"
    paths = {"video": stem.with_suffix(".mp4"), "events": Path(f"{stem}.events.tsv"), "objects": Path(f"{stem}.objects.jsonl")}
    n_frames = int(round(seconds * c.fps))
    lines = []
    with AvFileWriter(paths["video"], fps=c.fps, sample_rate=AUDIO_RATE, width=c.frame_width, height=c.frame_height) as writer:
        for k in tqdm(range(n_frames), desc="rendering scene", unit="frame", leave=False):
            frame, _ = scene.render_frame(k)
            objects = scene.frame_objects(k)
            writer.write_frame(draw_truth(frame, objects) if overlay else frame)
            # Audio for this frame period: samples [k, k + 1) / fps, exactly.
            a0, a1 = k * AUDIO_RATE // c.fps, (k + 1) * AUDIO_RATE // c.fps
            writer.write_audio(np.clip(scene.render_audio(a0, a1 - a0, AUDIO_RATE), -1.0, 1.0))
            lines.append(json.dumps({
                "frame": k, "time": round(k / c.fps, 6),
                "objects": [{"uid": o.object_uid, "class": CLASS_NAMES[o.class_index], "box": list(o.box), "sounding": o.sounding} for o in objects],
            }))
    write_strong_tsv(paths["events"], reference_events(scene, seconds))
    atomic_write_text(paths["objects"], "\n".join(lines) + "\n")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="bench", choices=sorted(PRESETS), help="world preset (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=split_seed("test", 0), help="scene seed (default: the first test seed, %(default)s)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the rendered clip (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("out/world"), help="output folder (default: %(default)s)")
    parser.add_argument("--no-overlay", action="store_true", help="write the raw camera picture, without ground-truth boxes")
    parser.add_argument("--no-difficulty", action="store_true", help="skip the difficulty figures (they take a minute or two)")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error(f"--seconds: expected a positive number, found {args.seconds}")

    config = get_preset(args.preset)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    paths = render_scene(Scene(config, args.seed), args.seconds, args.out, overlay=not args.no_overlay)
    print(f"scene synthetic:{args.seed} ({args.preset}, {args.seconds:g} s) rendered in {time.perf_counter() - started:.1f} s:")
    for kind, path in paths.items():
        print(f"  {kind:8s} {path}")

    if not args.no_difficulty:
        from models.world.difficulty import measure_difficulty

        started = time.perf_counter()
        train, test = single_event_windows("train", config=config), single_event_windows("test", config=config)
        difficulty = measure_difficulty(list(train), list(test))
        atomic_write_text(args.out / "difficulty.json", json.dumps(difficulty.to_dict(), indent=1) + "\n")
        print(f"world difficulty ({args.preset}; {time.perf_counter() - started:.0f} s):")
        print(difficulty.report())
        print(f"  written to {args.out / 'difficulty.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
