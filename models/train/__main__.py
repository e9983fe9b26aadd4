"""python -m models.train: train a registered recipe into a run folder."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from ..datasets.formats import describe_formats
    from ..recipes import RECIPES

    epilog = (
        "recipes:\n" + RECIPES.describe() + "\n\n"
        "overrides: any field of the recipe's config as key=value, e.g. epochs=5 batch_size=32 lr=3e-4\n"
        "  (--show-config prints them all with their defaults)\n\n"
        "dataset formats the recipes read with --data:\n" + describe_formats() + "\n"
        "  The VGG-Sound .pkl annotation files of the reference code are out of scope:\n"
        "  use the train.csv/test.csv lists of the VGG-Sound repository instead.\n\n"
        "distributed: torchrun --nproc_per_node N -m models.train ... (gloo on CPU, NCCL with device=cuda)"
    )
    parser = argparse.ArgumentParser(prog="python -m models.train", description="Train an avlive model into a run folder.", epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True, help="a registered recipe (listed below)")
    parser.add_argument("--data", type=Path, default=None, help="dataset root for recipes that read one")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: runs/RECIPE)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--show-config", action="store_true", help="print the recipe's config with overrides applied, then exit")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..recipes import RECIPES
    from .config import apply_overrides, config_to_dict
    from .loop import train

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        recipe_cls = RECIPES.get(args.recipe).factory
        config = apply_overrides(recipe_cls.config_class(), args.overrides)
        config.validate()
    except (KeyError, ValueError) as e:
        parser.error(str(e).strip("'\""))
    if args.show_config:
        for key, value in config_to_dict(config).items():
            print(f"{key}={value}")
        return 0
    out = args.out or Path("runs") / args.recipe
    try:
        train(recipe_cls(config), out, data=args.data, resume=args.resume, argv=[sys.executable, "-m", "models.train", *(argv if argv is not None else sys.argv[1:])])
    except (FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is in the run folder; continue with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
