"""Draw every icon Bucket Chat Desktop ships, from code, with Pillow.

    python resources/make_icons.py            # (re)write resources/icons/
    python resources/make_icons.py --preview  # also write build/icon-preview.png

The outputs are committed; run this after changing the design and commit them too.

The design: a rounded square in the app's accent blue holding a white bucket whose body
is also a speech bubble (the tail at its lower left) with a green check mark - chat that
lives in a bucket, verified. Each size is drawn for that size (at 8x, then reduced), not
scaled from a big picture: below 32 px the handle is left out and the strokes get
thicker, so the check stays readable at 16 px.

The tray set has no background square (panels draw their own): the white bucket gets a
dark outline, so it reads on light and on dark panels alike.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
OUT = HERE / "icons"

APP_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)
TRAY_SIZES = (16, 22, 24, 32, 48)
SUPERSAMPLE = 8

BLUE_TOP = (86, 150, 235)
BLUE_BOTTOM = (36, 92, 184)
WHITE = (255, 255, 255)
GREEN = (34, 158, 90)
OUTLINE = (22, 34, 56)

Point = tuple[float, float]


def rounded_polygon(points: Sequence[Point], radius: float, steps: int = 24) -> list[Point]:
    """The polygon with each corner replaced by a circular arc of ``radius`` (clamped so
    neighbouring arcs never overlap)."""
    out: list[Point] = []
    n = len(points)
    for i, (px, py) in enumerate(points):
        ax, ay = points[i - 1]
        bx, by = points[(i + 1) % n]
        la, lb = math.hypot(ax - px, ay - py), math.hypot(bx - px, by - py)
        ux, uy = (ax - px) / la, (ay - py) / la
        vx, vy = (bx - px) / lb, (by - py) / lb
        angle = math.acos(max(-1.0, min(1.0, ux * vx + uy * vy)))
        r = min(radius, math.tan(angle / 2) * min(la, lb) / 2)
        t = r / math.tan(angle / 2)
        start = (px + ux * t, py + uy * t)
        end = (px + vx * t, py + vy * t)
        bisx, bisy = ux + vx, uy + vy
        blen = math.hypot(bisx, bisy)
        cx = px + bisx / blen * r / math.sin(angle / 2)
        cy = py + bisy / blen * r / math.sin(angle / 2)
        a0 = math.atan2(start[1] - cy, start[0] - cx)
        a1 = math.atan2(end[1] - cy, end[0] - cx)
        delta = (a1 - a0 + math.pi) % (2 * math.pi) - math.pi
        out += [
            (cx + r * math.cos(a0 + delta * k / steps), cy + r * math.sin(a0 + delta * k / steps))
            for k in range(steps + 1)
        ]
    return out


def _scaled(points: Iterable[Point], s: float) -> list[Point]:
    return [(x * s, y * s) for x, y in points]


def _mask(size: int) -> Image.Image:
    return Image.new("L", (size, size), 0)


def bucket_masks(px: int, *, small: bool, inset: float = 0.0) -> tuple[Image.Image, Image.Image]:
    """(bucket body + tail + rim + handle, check mark) as masks of side ``px``, in a unit
    square where the bucket spans about x 0.2-0.8, y 0.15-0.85. ``inset`` shrinks the
    drawing towards the centre (room for the tray outline)."""
    k = 1 - 2 * inset
    dy = -0.07 if small else 0.0  # the small variant has no handle: centre it

    def u(points: Iterable[Point]) -> list[Point]:
        return _scaled([(inset + x * k, inset + (y + dy) * k) for x, y in points], px)

    shape = _mask(px)
    d = ImageDraw.Draw(shape)
    top, bottom = (0.31, 0.34) if not small else (0.25, 0.28)
    body = [(0.20, bottom), (0.80, bottom), (0.70, 0.78), (0.30, 0.78)]
    if small:
        body = [(0.14, bottom), (0.86, bottom), (0.74, 0.80), (0.26, 0.80)]
    d.polygon(u(rounded_polygon(body, 0.07)), fill=255)
    # The speech-bubble tail, out of the lower left of the body.
    tail = (
        [(0.33, 0.70), (0.47, 0.76), (0.20, 0.90)]
        if not small
        else [
            (0.29, 0.70),
            (0.48, 0.78),
            (0.14, 0.94),
        ]
    )
    d.polygon(u(rounded_polygon(tail, 0.02)), fill=255)
    # The rim: a little wider than the body's top.
    rim = [(0.15, top), (0.85, top), (0.85, bottom + 0.04), (0.15, bottom + 0.04)]
    if small:
        rim = [(0.08, top), (0.92, top), (0.92, bottom + 0.04), (0.08, bottom + 0.04)]
    d.polygon(u(rounded_polygon(rim, 0.035)), fill=255)
    if not small:
        # The handle: an arc over the rim.
        w = 0.055 * k * px
        box = u([(0.27, 0.12), (0.73, 0.52)])
        d.arc([box[0], box[1]], start=180, end=360, fill=255, width=round(w))

    check = _mask(px)
    c = ImageDraw.Draw(check)
    width = (0.11 if small else 0.085) * k * px
    pts = (
        [(0.33, 0.53), (0.46, 0.65), (0.68, 0.42)]
        if small
        else [(0.37, 0.535), (0.47, 0.635), (0.645, 0.445)]
    )
    pts_px = u(pts)
    c.line(pts_px, fill=255, width=round(width), joint="curve")
    for x, y in (pts_px[0], pts_px[-1]):
        r = width / 2
        c.ellipse([x - r, y - r, x + r, y + r], fill=255)
    return shape, check


def _solid(px: int, color: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGBA", (px, px), (*color, 255))


def _gradient(px: int) -> Image.Image:
    ramp = Image.linear_gradient("L").resize((px, px))
    return Image.composite(_solid(px, BLUE_BOTTOM), _solid(px, BLUE_TOP), ramp)


def _reduce(img: Image.Image, size: int) -> Image.Image:
    return img.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)


def app_icon(size: int) -> Image.Image:
    """The application icon at ``size`` pixels."""
    px = size * SUPERSAMPLE
    small = size < 32
    margin = 0.0 if size <= 24 else 0.04 if size <= 64 else 0.07
    radius = 0.20 if size <= 24 else 0.225
    square = _mask(px)
    lo, hi = margin * px, (1 - margin) * px
    ImageDraw.Draw(square).rounded_rectangle([lo, lo, hi, hi], radius=radius * px, fill=255)
    img = Image.new("RGBA", (px, px), (0, 0, 0, 0))
    img.paste(_gradient(px), (0, 0), square)
    inset = margin + (0.02 if small else 0.06)
    shape, check = bucket_masks(px, small=small, inset=inset)
    # A soft shadow under the bucket, only where there are pixels to spare.
    if not small:
        shadow = shape.filter(ImageFilter.GaussianBlur(px * 0.012))
        shadow = ImageChops.multiply(shadow, square).point(lambda v: v * 0.35)
        img.paste(_solid(px, (14, 40, 90)), (0, round(px * 0.012)), shadow)
    img.paste(_solid(px, WHITE), (0, 0), shape)
    img.paste(_solid(px, GREEN), (0, 0), ImageChops.multiply(check, shape))
    return _reduce(img, size)


def tray_icon(size: int) -> Image.Image:
    """The tray icon at ``size`` pixels: white bucket, dark outline, green check."""
    px = size * SUPERSAMPLE
    small = size < 32
    stroke = max(1.0, size / 16) * SUPERSAMPLE
    shape, check = bucket_masks(px, small=small, inset=0.03 if small else 0.0)
    outline = shape.filter(ImageFilter.MaxFilter(_odd(2 * stroke)))
    outline = outline.filter(ImageFilter.GaussianBlur(SUPERSAMPLE / 4))
    img = Image.new("RGBA", (px, px), (0, 0, 0, 0))
    img.paste(_solid(px, OUTLINE), (0, 0), outline)
    img.paste(_solid(px, WHITE), (0, 0), shape)
    img.paste(_solid(px, GREEN), (0, 0), ImageChops.multiply(check, shape))
    return _reduce(img, size)


def _odd(value: float) -> int:
    n = max(3, round(value))
    return n if n % 2 else n + 1


def write_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    app = {size: app_icon(size) for size in sorted({*APP_SIZES, *ICO_SIZES, *ICNS_SIZES})}
    for size in APP_SIZES:
        written.append(_save_png(app[size], out / f"bucket-chat-{size}.png"))
    for size in TRAY_SIZES:
        written.append(_save_png(tray_icon(size), out / f"tray-{size}.png"))
    ico = out / "bucket-chat.ico"
    biggest = app[max(ICO_SIZES)]
    biggest.save(
        ico,
        format="ICO",
        sizes=[(s, s) for s in ICO_SIZES],
        append_images=[app[s] for s in ICO_SIZES if s != max(ICO_SIZES)],
    )
    written.append(ico)
    icns = out / "bucket-chat.icns"
    app[1024].save(icns, format="ICNS", append_images=[app[s] for s in ICNS_SIZES[:-1]])
    written.append(icns)
    return written


def _save_png(img: Image.Image, path: Path) -> Path:
    img.save(path, format="PNG", optimize=True)
    return path


def preview(path: Path) -> Path:
    """Every icon at 1:1 on a light and on a dark panel, and the app icon at 4x."""
    rows = [
        [app_icon(s) for s in APP_SIZES[:6]],
        [tray_icon(s) for s in TRAY_SIZES],
    ]
    pad = 12
    width = sum(s + pad for s in APP_SIZES[:6]) + pad
    panels = [(236, 236, 236), (40, 40, 44), (58, 123, 213)]
    height = len(panels) * len(rows) * (128 + pad) + pad
    sheet = Image.new("RGB", (max(width, 16 * 4 * len(TRAY_SIZES) * 2), height), (128, 128, 128))
    y = pad
    for panel in panels:
        for row in rows:
            band = Image.new("RGB", (sheet.width, 128 + pad), panel)
            x = pad
            for icon in row:
                band.paste(icon, (x, (128 - icon.height) // 2), icon)
                x += icon.width + pad
            # The small ones again at 4x, to judge pixels.
            for icon in row:
                if icon.width <= 24:
                    big = icon.resize((icon.width * 4, icon.height * 4), Image.Resampling.NEAREST)
                    band.paste(big, (x, (128 - big.height) // 2), big)
                    x += big.width + pad
            sheet.paste(band, (0, y))
            y += 128 + pad
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the icons")
    parser.add_argument("--preview", action="store_true", help="also write a preview sheet")
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(path)
    if args.preview:
        print(preview(HERE.parent / "build" / "icon-preview.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
