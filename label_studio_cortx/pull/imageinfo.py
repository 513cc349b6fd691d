"""Image dimensions from a file's header, standard library only.

Owns one question: "is this downloaded object a readable image, and how large is it?". The media pull asks it of
every object so that a corrupted or foreign object (an HTML error page, a truncated upload) is reported by key
instead of surfacing as a decode error deep inside a training job; YOLO boxes (normalized) need the size too.
Reads PNG, JPEG, GIF, BMP and WebP headers; other formats are reported as unreadable by the caller.
"""

from __future__ import annotations

import os
import struct


class NotAnImage(ValueError):
    """The file is not a PNG, JPEG, GIF, BMP or WebP image, or its header is damaged."""


def _jpeg_size(f) -> tuple[int, int]:
    f.seek(2)
    while True:
        marker = f.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            raise NotAnImage("damaged JPEG: no frame header")
        code = marker[1]
        while code == 0xFF:  # fill bytes before a marker
            byte = f.read(1)
            if not byte:
                raise NotAnImage("damaged JPEG: truncated marker")
            code = byte[0]
        if code in (0xD8, 0x01) or 0xD0 <= code <= 0xD7:  # markers without a length
            continue
        raw = f.read(2)
        if len(raw) < 2:
            raise NotAnImage("damaged JPEG: truncated segment")
        length = struct.unpack(">H", raw)[0]
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):
            data = f.read(5)
            if len(data) < 5:
                raise NotAnImage("damaged JPEG: truncated frame header")
            height, width = struct.unpack(">HH", data[1:5])
            return width, height
        if length < 2:
            raise NotAnImage("damaged JPEG: bad segment length")
        f.seek(length - 2, os.SEEK_CUR)


def image_size(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    """``(kind, width, height)`` of the image at ``path``; raises :class:`NotAnImage` for anything else.

    Also checks that the file is not cut short right after its header (a truncated download or upload):
    PNG must end with an IEND chunk, JPEG with an EOI marker.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(32)
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            f.seek(max(0, size - 12))
            if b"IEND" not in f.read(12):
                raise NotAnImage("truncated PNG (no IEND chunk at the end)")
            kind = "png"
        elif head.startswith(b"\xff\xd8"):
            width, height = _jpeg_size(f)
            f.seek(max(0, size - 16))
            if b"\xff\xd9" not in f.read(16):
                raise NotAnImage("truncated JPEG (no end-of-image marker)")
            kind = "jpeg"
        elif head[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", head[6:10])
            kind = "gif"
        elif head.startswith(b"BM") and len(head) >= 26:
            width, height = struct.unpack("<ii", head[18:26])
            height = abs(height)  # negative: top-down bitmap
            kind = "bmp"
        elif head.startswith(b"RIFF") and head[8:12] == b"WEBP":
            chunk = head[12:16]
            f.seek(20)
            data = f.read(10)
            if chunk == b"VP8 " and len(data) >= 10:
                width, height = (v & 0x3FFF for v in struct.unpack("<HH", data[6:10]))
            elif chunk == b"VP8L" and len(data) >= 5:
                bits = int.from_bytes(data[1:5], "little")
                width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            elif chunk == b"VP8X" and len(data) >= 10:
                width = int.from_bytes(data[4:7], "little") + 1
                height = int.from_bytes(data[7:10], "little") + 1
            else:
                raise NotAnImage("damaged WebP header")
            kind = "webp"
        else:
            raise NotAnImage("not a PNG, JPEG, GIF, BMP or WebP image")
    if width <= 0 or height <= 0:
        raise NotAnImage(f"{kind} header with an impossible size {width}x{height}")
    return kind, width, height
