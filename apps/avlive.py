"""The ``avlive`` command.

The live pipeline (capture → ring buffers → scheduler → rolling labels and heatmaps → sinks) is
issue 7 and not built yet; until it lands this command lists what is installed and points at the
commands that work today, and exits with status 2 so scripts do not mistake it for a live run.
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="avlive", description="Real-time audio-visual recognition (live pipeline: not built yet).")
    parser.add_argument("--list-models", action="store_true", help="list the registered networks, recipes and live models")
    args, _ = parser.parse_known_args(argv)
    if args.list_models:
        from models.live import LIVE_MODELS
        from models.networks import NETWORKS, import_families
        from models.recipes import RECIPES

        import_families()
        print("networks:\n" + NETWORKS.describe())
        print("recipes (python -m models.train):\n" + RECIPES.describe())
        print("live models:\n" + LIVE_MODELS.describe())
        return 0
    print(
        "avlive: the live pipeline (camera + microphone → labels and heatmaps) is not built yet.\n"
        "  What works today:\n"
        "    python -m apps.world_report            render a bench scene with its ground truth\n"
        "    python -m models.train --help          train a model\n"
        "    python -m models.export RUN_DIR        export it to ONNX\n"
        "    python -m apps.evaluate RUN_DIR        score it on the bench windows\n"
        "    avlive --list-models                   what is registered",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
