"""Command-line entry points: `python -m gan_lib generate --run DIR --n 500 --out DIR`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gan_lib")
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write PNG images from a run's generator, with their seeds")
    gen.add_argument("--run", required=True, help="a run folder holding generator.keras")
    gen.add_argument("--n", type=int, default=500, help="how many images")
    gen.add_argument("--out", required=True, help="output folder")
    gen.add_argument("--seed", type=int, default=0, help="image i is made from noise seeded by (seed, i)")
    gen.add_argument("--upscale", type=int, default=0, help="also resize to this side (bicubic); 0 = training size")
    gen.add_argument("--label", choices=["yes", "no"], help="class-conditional runs: tumour (yes) or not (no); "
                     "default: alternating")
    args = parser.parse_args(argv)
    from .images import CLASS_LABELS
    from .generate import write_images

    label = CLASS_LABELS[args.label] if args.label else None
    out = write_images(args.run, args.n, args.out, seed=args.seed, upscale=args.upscale, label=label)
    print(f"wrote {args.n} images, images.csv and noise.npy to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
