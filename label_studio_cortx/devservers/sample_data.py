"""Sample data for the demo: a few dozen small images of coloured shapes and a JSON task file, made locally.

Everything is drawn with Pillow (installed with Label Studio) from a fixed seed, so every run produces the same
bytes and nothing is downloaded. :func:`sample_objects` returns ``(key, body, content_type)`` tuples ready to be
put into a bucket; the task file lists one task per image with an ``s3://<bucket>/<key>`` URL.
"""

from __future__ import annotations

import io
import json
import math
import random
from dataclasses import dataclass

IMAGE_PREFIX = "images/"
TASKS_KEY = "tasks/tasks.json"
DEFAULT_COUNT = 36
SIZE = (320, 240)

SHAPES = ("Circle", "Square", "Triangle", "Star", "Diamond")
COLOURS = {
    "red": (220, 40, 50),
    "orange": (245, 130, 30),
    "yellow": (240, 210, 40),
    "green": (50, 170, 70),
    "teal": (30, 160, 160),
    "blue": (40, 90, 210),
    "purple": (140, 60, 190),
    "pink": (235, 110, 170),
}
BACKGROUNDS = {"Light": ((235, 235, 230), (250, 250, 245)), "Dark": ((30, 32, 40), (60, 62, 75))}

LABEL_CONFIG = """<View>
  <Header value="$title"/>
  <Image name="image" value="$image" zoom="true" zoomControl="true"/>
  <RectangleLabels name="shape" toName="image">
    <Label value="Circle" background="#e6194b"/>
    <Label value="Square" background="#3cb44b"/>
    <Label value="Triangle" background="#4363d8"/>
    <Label value="Star" background="#f58231"/>
    <Label value="Diamond" background="#911eb4"/>
  </RectangleLabels>
  <Choices name="background" toName="image" choice="single" showInline="true">
    <Choice value="Light"/>
    <Choice value="Dark"/>
  </Choices>
</View>
"""


@dataclass(frozen=True)
class DrawnShape:
    shape: str
    colour: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels


@dataclass(frozen=True)
class SampleImage:
    key: str
    body: bytes
    content_type: str
    title: str
    background: str
    shapes: tuple[DrawnShape, ...]


def _polygon(shape: str, box: tuple[int, int, int, int]) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = box
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    if shape == "Triangle":
        return [(cx, y0), (x1, y1), (x0, y1)]
    if shape == "Diamond":
        return [(cx, y0), (x1, cy), (cx, y1), (x0, cy)]
    # Star: ten points alternating between the outer and an inner radius.
    points = []
    for i in range(10):
        angle = -math.pi / 2 + i * math.pi / 5
        scale = 1.0 if i % 2 == 0 else 0.45
        points.append((cx + rx * scale * math.cos(angle), cy + ry * scale * math.sin(angle)))
    return points


def _overlaps(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]], margin: int = 8) -> bool:
    x0, y0, x1, y1 = box
    return any(
        x0 < ox1 + margin and ox0 < x1 + margin and y0 < oy1 + margin and oy0 < y1 + margin
        for ox0, oy0, ox1, oy1 in others
    )


def draw_image(index: int, seed: int = 7) -> SampleImage:
    """Image number ``index`` (1-based): one to three non-overlapping shapes on a light or dark gradient."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed * 1000 + index)
    background = "Light" if index % 3 else "Dark"
    top, bottom = BACKGROUNDS[background]
    width, height = SIZE
    image = Image.new("RGB", SIZE)
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / (height - 1)
        draw.line([(0, y), (width, y)], fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))

    main_shape = SHAPES[(index - 1) % len(SHAPES)]
    count = 1 + (index * 7) % 3
    boxes: list[tuple[int, int, int, int]] = []
    drawn: list[DrawnShape] = []
    for n in range(count):
        shape = main_shape if n == 0 else rng.choice(SHAPES)
        colour = rng.choice(list(COLOURS))
        for _attempt in range(50):
            side = rng.randint(50, 100)
            w = side if shape in ("Circle", "Square") else rng.randint(50, 100)
            x0, y0 = rng.randint(10, width - w - 10), rng.randint(10, height - side - 10)
            box = (x0, y0, x0 + w, y0 + side)
            if not _overlaps(box, boxes):
                break
        else:
            continue
        boxes.append(box)
        fill, outline = COLOURS[colour], (255, 255, 255) if background == "Dark" else (20, 20, 20)
        if shape == "Circle":
            draw.ellipse(box, fill=fill, outline=outline, width=2)
        elif shape == "Square":
            draw.rectangle(box, fill=fill, outline=outline, width=2)
        else:
            draw.polygon(_polygon(shape, box), fill=fill, outline=outline, width=2)
        drawn.append(DrawnShape(shape, colour, box))

    jpeg = index % 4 == 0
    buffer = io.BytesIO()
    if jpeg:
        image.save(buffer, format="JPEG", quality=88)
    else:
        image.save(buffer, format="PNG", optimize=True)
    first = drawn[0]
    name = f"shape-{index:03d}-{first.colour}-{first.shape.lower()}.{'jpg' if jpeg else 'png'}"
    others = f" and {len(drawn) - 1} more" if len(drawn) > 1 else ""
    return SampleImage(
        key=IMAGE_PREFIX + name,
        body=buffer.getvalue(),
        content_type="image/jpeg" if jpeg else "image/png",
        title=f"#{index}: {'an' if first.colour[0] in 'aeiou' else 'a'} {first.colour} {first.shape.lower()}{others}",
        background=background,
        shapes=tuple(drawn),
    )


def sample_images(count: int = DEFAULT_COUNT, seed: int = 7) -> list[SampleImage]:
    return [draw_image(i, seed) for i in range(1, count + 1)]


def task_file(bucket: str, images: list[SampleImage]) -> bytes:
    """A JSON list of tasks, one per image, pointing at the image in ``bucket`` by ``s3://`` URL."""
    tasks = [
        {
            "data": {
                "image": f"s3://{bucket}/{image.key}",
                "title": image.title,
                "shapes": ", ".join(f"{s.colour} {s.shape.lower()}" for s in image.shapes),
            }
        }
        for image in images
    ]
    return (json.dumps(tasks, indent=2) + "\n").encode()


def sample_objects(bucket: str, count: int = DEFAULT_COUNT, seed: int = 7) -> list[tuple[str, bytes, str]]:
    """Every object of the sample bucket: the images, then the task file."""
    images = sample_images(count, seed)
    objects = [(image.key, image.body, image.content_type) for image in images]
    objects.append((TASKS_KEY, task_file(bucket, images), "application/json"))
    return objects
