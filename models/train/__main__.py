"""python -m models.train: train a registered recipe into a run folder."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from models.datasets.formats import describe_formats
    from models.families import RECIPES

    epilog = (
        "recipes:\n" + RECIPES.describe() + "\n\n"
        "overrides: any field of the recipe's config as key=value, e.g. epochs=5 batch_size=32 lr=3e-4\n"
        "  tuples as blocks=2,2,2,2 ([2, 2, 2, 2] and () are read too), None as none, booleans as true/false\n"
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
    parser.add_argument("--show-config", action="store_true",
                        help="print the recipe's config with overrides applied, one key=value per line in the syntax "
                             "the overrides take (blocks=2,2,2,2; none; true/false), then exit")
    parser.add_argument("--layouts", action="store_true",
                        help="print which recipe reads which --data layout (the markdown table in README), then exit")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return parser


#: Fields a resumed run may change: how it runs, not what it computes.
RESUME_MAY_CHANGE = ("threads", "num_workers", "time_limit_min")


def stored_config(recipe_cls, out: Path):
    """The config a run in ``out`` was started with (its ``config.json``), or None when there is none.

    Raises:
        ValueError: the run belongs to another recipe.
    """
    import json

    from models.core.train_config import config_from_dict

    path = out / "config.json"
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    if saved.get("recipe") != recipe_cls.name:
        raise ValueError(f"--resume: {out} holds a {saved.get('recipe')!r} run, not {recipe_cls.name!r}")
    return config_from_dict(recipe_cls.config_class, saved["config"])


def check_resume_overrides(stored, config, out: Path) -> None:
    """A resumed run keeps its settings: overrides may repeat them, or change only
    :data:`RESUME_MAY_CHANGE`.

    Raises:
        ValueError: naming the field, the run's value and the command line's.
    """
    import dataclasses

    from models.core.train_config import format_override

    for f in dataclasses.fields(stored):
        before, after = getattr(stored, f.name), getattr(config, f.name)
        if before != after and f.name not in RESUME_MAY_CHANGE:
            raise ValueError(f"--resume: {out} was started with {f.name}={format_override(before)}, found "
                             f"{f.name}={format_override(after)} on the command line; resume with the run's settings "
                             f"or start a new --out")


def layout_table() -> str:
    """The recipe-by-layout table (markdown): what a recipe trains on without ``--data``, and per
    layout ``reads`` where it trains on it, ``–`` where it refuses it in one line."""
    from models.datasets.labelled_sets import LAYOUTS
    from models.families import RECIPES

    rows = ["| recipe | without `--data` | " + " | ".join(f"`{name}`" for name in LAYOUTS) + " |",
            "|---|---|" + "---|" * len(LAYOUTS)]
    for entry in RECIPES.entries():
        recipe = entry.factory
        world = recipe.data_help.startswith(("optional", "not used"))
        cells = ["reads" if name in recipe.reads else "–" for name in LAYOUTS]
        rows.append(f"| `{entry.name}` | {'the world' if world else 'needs it'} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    from models.families import RECIPES
    from models.core.train_config import apply_overrides, format_overrides
    from models.train.loop import train

    argv = sys.argv[1:] if argv is None else list(argv)
    if "--layouts" in argv:  # needs no --recipe
        print(layout_table())
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    out = args.out or Path("runs") / args.recipe
    try:
        recipe_cls = RECIPES.get(args.recipe).factory
        stored = stored_config(recipe_cls, out) if args.resume else None
        if args.resume and stored is None:
            raise ValueError(f"--resume: {out} has no config.json, so it holds no run to continue (a run folder has "
                             f"config.json and checkpoints/); leave out --resume to start one there")
        config = apply_overrides(stored if stored is not None else recipe_cls.config_class(), args.overrides)
        if stored is not None:
            check_resume_overrides(stored, config, out)
        config.validate()
    except (KeyError, ValueError) as e:
        parser.error(str(e).strip("'\""))
    if args.show_config:
        for line in format_overrides(config):  # each line is an override that parses back to this value
            print(line)
        return 0
    command = [sys.executable, "-m", "models.train", *argv]
    try:
        if getattr(config, "cv", 0) and config.best_of > 1:
            raise ValueError("cv and best_of: one at a time (cross-validate one seed, or pick the best seed of one split)")
        if config.best_of > 1:
            from models.train.seed_selection import best_of_seeds

            best_of_seeds(recipe_cls, config, out, args.data, train, argv=command)
            return 0
        if getattr(config, "cv", 0):
            from models.train.crossval import cross_validate

            cross_validate(recipe_cls, config, out, args.data, train, argv=command)
            return 0
        train(recipe_cls(config), out, data=args.data, resume=args.resume, argv=command)
    except (FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is in the run folder; continue with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
