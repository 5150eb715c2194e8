from pathlib import Path

import cv2
import numpy as np
import pytest

from hotpose.service.video import VideoError, image_size, probe


def huge_png_header(width: int, height: int) -> bytes:
    """The start of a PNG that claims width x height (a few bytes: what a decompression bomb looks like
    before its compressed data)."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + b"IHDR" + ihdr + b"\0" * 4


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".bmp", ".tiff"])
@pytest.mark.parametrize("shape", [(37, 53), (480, 640), (3000, 17)])
def test_image_size_reads_the_header_of_each_format(ext: str, shape: tuple[int, int]) -> None:
    img = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, img)
    assert ok and image_size(buf.tobytes()) == (shape[1], shape[0])


def test_image_size_of_lossless_webp_progressive_jpeg_and_non_images() -> None:
    img = np.zeros((31, 45, 3), np.uint8)
    assert image_size(cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes()) == (45, 31)
    assert image_size(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()) == (45, 31)
    assert image_size(huge_png_header(30000, 30000)) == (30000, 30000)
    for junk in (b"", b"not an image", b"\xff\xd8\xff", b"\xff\xd8\xff\xda\x00\x02", b"RIFF\0\0\0\0WEBPVP8 "):
        assert image_size(junk) is None


def test_probe_takes_an_image_size_from_its_header_without_decoding_it(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(huge_png_header(30000, 30000))  # would take 2.7 GB decoded; not decodable at all here
    info = probe(bomb)
    assert (info.width, info.height, info.frames) == (30000, 30000, 1)
    text = tmp_path / "notes.jpg"
    text.write_text("not a JPEG")
    with pytest.raises(VideoError, match="not a JPEG, PNG, WebP, BMP or TIFF image"):
        probe(text)
