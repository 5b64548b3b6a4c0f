"""Blurring images with Pillow: ``blur`` runs on workers; ``make_images`` makes a folder
of images to blur, so the example needs no downloads.

A task takes a path and writes its output next to it: images travel as file names,
never as pixels, so messages stay small.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from taskmill import App

app = App("images")

SUFFIX = ".blurred.png"


def blurred_path(source: str | Path) -> Path:
    """Where the blurred copy of ``source`` goes: beside it, ``NAME.blurred.png``."""
    source = Path(source)
    return source.with_name(source.stem + SUFFIX)


def blurred_png(source: str | Path, radius: float) -> bytes:
    """``source`` blurred, as PNG bytes."""
    with Image.open(source) as image:
        blurred = image.filter(ImageFilter.GaussianBlur(radius))
    out = io.BytesIO()
    blurred.save(out, format="PNG")
    return out.getvalue()


@app.task
def blur(source: str, radius: float = 4.0) -> str:
    """Blur the image at ``source``; returns the path of the blurred copy."""
    target = blurred_path(source)
    target.write_bytes(blurred_png(source, radius))
    return str(target)


def make_images(folder: Path, count: int, size: tuple[int, int] = (800, 600)) -> list[Path]:
    """``count`` different images (fractal, gradient, noise, shapes) as PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    width, height = size
    for index in range(count):
        left, top = -2.2 + 0.1 * (index % 7), -1.2 + 0.05 * (index % 5)
        fractal = Image.effect_mandelbrot(size, (left, top, left + 3.0, top + 2.4), 40)
        noise = Image.effect_noise(size, 20 + index % 40)
        gradient = Image.linear_gradient("L").resize(size).rotate(index * 37 % 360)
        image = Image.merge("RGB", (fractal, gradient, noise))
        draw = ImageDraw.Draw(image)
        for shape in range(6):
            x, y = (index * 97 + shape * 131) % width, (index * 53 + shape * 71) % height
            draw.ellipse((x, y, x + 80, y + 60), outline=(255, 255, 255), width=4)
        path = folder / f"image-{index:03}.png"
        image.save(path, compress_level=1)  # quick to write; the blur is the work
        paths.append(path)
    return paths
