"""python -m apps.build_stamp_videos OUT: real photo+sound videos and one-sounding-object scenes
from the Debian package ``tuxpaint-stamps-default``, for training and scoring L³ on real material.

The package is fetched without installing (``apt-get download`` then ``dpkg -x`` into
``--cache``/tuxpaint-stamps-default, default ``~/.cache/avlive/debian-sounds``, the cache of
``apps.build_real_sounds``; an extracted package is not fetched again; ``--debs DIR`` takes the
``.deb`` from DIR; ``--stamps DIR`` reads a stamps folder directly and fetches nothing). Its stamps
outside ``animals/`` with both ``NAME.png`` and ``NAME.ogg`` (65) are composed as described in
:mod:`models.datasets.stamp_videos`: single-stamp videos and 3-4-stamp scenes with one sounding
stamp, split by stamp (by sound) into train / val / test, every video with a box sidecar
(:mod:`models.datasets.formats.video_boxes`), every file's stamps and licence in ``SOURCES.tsv``.
Deterministic given ``--seed``.

Then::

    python -m apps.build_stamp_videos out/stamps
    python -m models.train --recipe l3-lite --out runs/l3-stamps --data out/stamps threads=2 time_limit_min=60
    python -m apps.eval_l3 runs/l3-stamps --data out/stamps --write-threshold   # threshold on val/, rows of test/
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

PACKAGE = "tuxpaint-stamps-default"
STAMPS = Path("usr/share/tuxpaint/stamps")
COPYRIGHT = Path(f"usr/share/doc/{PACKAGE}/copyright")


def fetch_stamps(cache: Path, debs: Path | None = None) -> Path:
    """The extracted package's root (``cache/tuxpaint-stamps-default``), fetching it if needed."""
    import subprocess

    from apps.build_real_sounds import _deb_for

    root = cache / PACKAGE
    if not (root / ".done").exists():
        deb = _deb_for(PACKAGE, cache / "debs", debs)
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        (root / ".done").write_text(deb.name + "\n")
    return root


def main(argv: list[str] | None = None) -> int:
    from models.datasets.stamp_videos import StampVideoConfig, build_stamp_videos

    d = StampVideoConfig()
    p = argparse.ArgumentParser(prog="python -m apps.build_stamp_videos", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "avlive" / "debian-sounds",
                   help="where the package is downloaded and extracted (default: %(default)s)")
    p.add_argument("--debs", type=Path, default=None, help="take the .deb from this folder instead of downloading")
    p.add_argument("--stamps", type=Path, default=None, help="a stamps folder to read instead of the package")
    p.add_argument("--copyright", type=Path, default=None, help="DEP-5 copyright file (default: the package's)")
    for field in dataclasses.fields(StampVideoConfig):
        p.add_argument("--" + field.name.replace("_", "-"), type=type(getattr(d, field.name)), default=getattr(d, field.name),
                       help="(default: %(default)s)")
    args = p.parse_args(argv)
    config = StampVideoConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(StampVideoConfig)})
    try:
        config.validate()
        if args.stamps is not None:
            stamps, copyright_file = args.stamps, args.copyright
        else:
            root = fetch_stamps(args.cache, args.debs)
            stamps, copyright_file = root / STAMPS, args.copyright or root / COPYRIGHT
        text = copyright_file.read_text(encoding="utf-8") if copyright_file and copyright_file.is_file() else ""
        if not text:
            print("warning: no DEP-5 copyright file; SOURCES.tsv licences read 'unknown'", file=sys.stderr)
        counts = build_stamp_videos(stamps, args.out, config, text, log=lambda m: print(m, file=sys.stderr))
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    print(f"written to {args.out} (SOURCES.tsv lists every file's stamps and licence)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
