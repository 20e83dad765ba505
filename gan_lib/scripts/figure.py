"""The README's figure: a class-conditional run's generated slices of each class above real
training scans of that class (06's class picks), as a small PNG.

    python -m gan_lib.scripts.figure --run <run folder> --out docs/figure.png [--per-class 8]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from matplotlib.figure import Figure
from PIL import Image

from gan_lib.config import class_names
from gan_lib.data.storage import load_processed
from gan_lib.plots import class_picks
from gan_lib.records.run import read_run_record
from gan_lib.runs.folder import recorded_dataset
from gan_lib.runs.generate import classes_of, default_labels, generate, generator_step, load_generator, takes_label


def class_figure(run: Path, per_class: int = 8, seed: int = 0) -> Figure:
    """`run`'s generated slices of each class above real training scans of that class, captioned
    with its preset, size and the step its generator.keras was saved at."""
    generator = load_generator(run)
    if not takes_label(generator):
        raise ValueError(f"--run {run}: its generator makes one class; the figure shows both")
    record = read_run_record(run)
    real, real_labels, _ = load_processed(recorded_dataset(run), "train")
    n = 2 * classes_of(generator) * per_class  # labels in turn: enough of each class to pick from
    generated, _ = generate(generator, n, seed=seed)
    names = class_names(record.config["classes"], record.config["class_map"])
    figure = class_picks(generated, default_labels(0, n, classes_of(generator)), real, real_labels, names,
                         n=per_class, seed=seed, synthetic=record.data.synthetic)
    figure.axes[0].set_title(f"{record.preset}, {record.config['image_size']} px, "
                             f"{generator_step(run):,} steps: generated (upper row of each class) "
                             f"and real training scans (lower row)", fontsize=9)
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a finished class-conditional run folder")
    parser.add_argument("--out", type=Path, default=Path("docs/figure.png"))
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="noise seed of the generated images and the real picks")
    args = parser.parse_args(argv)
    try:
        figure = class_figure(args.run, args.per_class, args.seed)
    except ValueError as error:
        parser.error(str(error))
    image = io.BytesIO()
    figure.savefig(image, dpi=72, bbox_inches="tight")
    # a grey picture with yellow captions: a 256-colour palette keeps it, at a fraction of the bytes
    Image.open(image).convert("RGB").quantize(colors=256).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
