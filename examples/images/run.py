"""Blur a folder of images on workers; compare with one process.

    python -m taskmill.examples.images.run [--images 32] [--radius 4] [-c 2]

Makes the images first (``image-NNN.png`` in the example's folder), blurs each one in
this process to time it and keep the expected bytes, then sends one ``blur`` task per
image: each worker writes ``image-NNN.blurred.png`` beside its input. Every output file
must equal the one-process result, byte for byte.
"""

from __future__ import annotations

import time
from pathlib import Path

from taskmill.examples import script
from taskmill.examples.images.tasks import blur, blurred_path, blurred_png, make_images
from taskmill.examples.report import Report
from taskmill.examples.workers import running_worker


def run(
    folder: Path,
    concurrency: int = 2,
    progress: bool = True,
    images: int = 32,
    radius: float = 4.0,
) -> Report:
    for old in folder.glob("*.png"):
        old.unlink()
    sources = make_images(folder, images)

    begun = time.perf_counter()
    expected = {blurred_path(path): blurred_png(path, radius) for path in sources}
    one_process_seconds = time.perf_counter() - begun

    with running_worker("taskmill.examples.images.tasks", folder / "worker.log", concurrency):
        begun = time.perf_counter()
        written = blur.starmap([(str(path), radius) for path in sources], chunksize=1)
        outputs = [Path(path) for path in written.get(timeout=600, progress=progress)]
        seconds = time.perf_counter() - begun
    assert outputs == list(expected), "outputs are not where they belong"
    for path, content in expected.items():
        assert path.read_bytes() == content, f"{path} differs from the one-process blur"
    return Report(
        "images",
        seconds,
        one_process_seconds,
        [
            f"{images} images blurred (radius {radius}), written beside them in {folder}",
            f"every output equal to the one-process blur, e.g. {outputs[0].name}",
        ],
        {"sources": sources, "outputs": outputs},
    )


def main(argv: list[str] | None = None) -> int:
    arguments = script.parser("images", __doc__)
    arguments.add_argument("--images", type=int, default=32, help="how many images")
    arguments.add_argument("--radius", type=float, default=4.0, help="blur radius, pixels")
    return script.main(run, arguments, argv)


if __name__ == "__main__":
    raise SystemExit(main())
