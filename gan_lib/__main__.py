"""Command-line entry points: `python -m gan_lib generate --run DIR --n 500 --out DIR`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import GENERATOR_FILES
from .runs.location import run_path


def count(text: str) -> int:
    """A whole number of at least 1, for argparse (its error then names the argument)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def run_folder(text: str) -> Path:
    """A path to a run folder, or a run's name: its folder under the default output_root."""
    path = Path(text)
    if path.exists() or len(path.parts) != 1:
        return path
    from .config import GANConfig

    try:
        return run_path(GANConfig.from_overrides(run_name=text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def non_negative(text: str) -> int:
    """A whole number of at least 0 (a noise seed), for argparse."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be 0 or more")
    return value


def writable_folder(text: str) -> Path:
    """A folder that exists or can be made, and can be written to: checked before any work."""
    path = Path(text)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise argparse.ArgumentTypeError(f"{text}: cannot be made ({err.strerror or err})") from None
    if not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: not writable")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gan_lib")
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write PNG images from a run's generator, with their seeds")
    gen.add_argument("--run", required=True, type=run_folder, help="a run folder holding generator.keras, or a run "
                     "name (its folder under the default output_root)")
    gen.add_argument("--n", type=count, default=500, help="how many images")
    gen.add_argument("--out", type=writable_folder, required=True, help="output folder")
    gen.add_argument("--seed", type=non_negative, default=0, help="image i is made from noise seeded by (seed, i)")
    gen.add_argument("--upscale", type=lambda t: 0 if t == "0" else count(t), default=0,
                     help="also resize to this side (bicubic); 0 = training size")
    gen.add_argument("--label", help="class-conditional runs: the class by name, tumour (yes) or not (no), or with "
                     "classes=all a class folder's name; default: each class in turn")
    gen.add_argument("--generator", choices=GENERATOR_FILES, default="final", help="final: generator.keras (the "
                     "last step trained); best: generator_best.keras (the step best.json names)")
    args = parser.parse_args(argv)
    from .config import class_names, folder_key
    from .records.run import read_run_record
    from .runs.generate import load_generator, write_images

    try:
        load_generator(args.run, args.generator)
    except (FileNotFoundError, ValueError) as err:
        parser.error(f"--run: {err}")

    config = read_run_record(args.run).config
    names = class_names(config["classes"], config["class_map"])
    if args.label and folder_key(args.label) not in names:
        parser.error(f"--label {args.label!r}: this run's classes are {', '.join(names)}")
    label = names.index(folder_key(args.label)) if args.label else None
    try:
        out = write_images(args.run, args.n, args.out, seed=args.seed, upscale=args.upscale, label=label,
                           which=args.generator)
    except ValueError as err:  # a label for a generator of one class
        parser.error(f"--label: {err}")
    except OSError as err:  # a full disk, a folder that went away: the images written so far are whole
        print(f"python -m gan_lib generate: stopped: {err}; images.csv was not written (run it again when "
              "there is room: each image is made again from its seed and index)", file=sys.stderr)
        return 1
    print(f"wrote {args.n} images, images.csv, noise.npy and source.json to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
