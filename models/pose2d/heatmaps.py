"""The official top-down test pipeline of the heatmap models: person box -> crop -> heatmaps -> pixels.

Two variants, because the papers' code bases differ and each model must be run as it was evaluated:

- `DARKPOSE`: TransPose and TokenPose, both built on the DarkPose code base (ilovepose/DarkPose:
  `lib/dataset/coco.py`, `lib/utils/transforms.py`, `lib/core/inference.py`, `lib/core/function.py`).
  The box centre is `x + (w - 1) / 2`; the affine maps the box's centre to the crop's centre
  `((W - 1) / 2, (H - 1) / 2)` and scales by `(W - 1) / (box width - 1)`; the flip test averages the
  mirrored heatmaps without a shift (the affine is symmetric about the centre, so none is needed);
  decoding is DARK: argmax, the heatmap blurred by an 11-tap Gaussian (rescaled to its old
  maximum), its log, and one Newton step of the second-order Taylor expansion at the argmax.
- `MMPOSE`: UniFormer, whose pose code is mmpose 0.x (`TopDownAffine`, `TopDownSimpleHead`,
  `keypoints_from_heatmaps`, `test_cfg = dict(flip_test=True, post_process='default',
  shift_heatmap=True)`). The box centre is `x + w / 2`; the affine maps it to `(W / 2, H / 2)` and
  scales by `W / box width`; the mirrored heatmaps move one column right before averaging (the
  mirror of that affine is one pixel off); decoding is argmax plus a quarter cell towards the
  higher neighbour in x and in y.

Both: the box takes the crop's aspect (width / height = 0.75 for 256x192) by growing its short
side, then grows by 1.25 (mmpose's padding, DarkPose's `scale * 1.25`); `pixel_std = 200` only
rescales and cancels. A keypoint's score is its heatmap's maximum.

Coordinates: the official code works in pixel indices (cv2's convention: pixel i's centre at i).
hotpose puts a pixel's centre at i + 0.5. `HeatmapPose` keeps a box's numbers as the official
COCO evaluation does (so the crop is the official one) and adds 0.5 to the decoded keypoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

# COCO-17 left/right pairs (the flip test swaps their heatmaps)
COCO_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
BOX_PADDING = 1.25
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class HeatmapPipeline:
    """How one code base crops, flips and decodes at test time (see the module docstring)."""

    name: str
    aligned: bool  # True: DarkPose's (n - 1) alignment of box, crop and heatmap; False: mmpose's n / 2
    shift_heatmap: bool  # flip test: move the mirrored heatmaps one column right before averaging
    decoder: Literal["dark", "quarter"]
    blur_kernel: int = 11  # DARK's Gaussian blur (taps)
    padding: float = BOX_PADDING


DARKPOSE = HeatmapPipeline("darkpose", aligned=True, shift_heatmap=False, decoder="dark")
MMPOSE = HeatmapPipeline("mmpose", aligned=False, shift_heatmap=True, decoder="quarter")


def box_to_crop(
    box: np.ndarray | tuple[float, float, float, float], aspect: float, pipeline: HeatmapPipeline
) -> tuple[np.ndarray, np.ndarray]:
    """A person box (x0, y0, x1, y1) -> the crop's (centre [2], size [2] = width, height), pixels.

    `aspect` is the model's input width / height. The box's numbers are used as the official code
    uses a COCO box [x, y, w, h]; the centre is in the official pixel-index frame (see the module docstring).
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    if pipeline.aligned:
        centre = np.array([x0 + (w - 1) * 0.5, y0 + (h - 1) * 0.5])
    else:
        centre = np.array([x0 + w * 0.5, y0 + h * 0.5])
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    return centre, np.array([w, h]) * pipeline.padding


def crop_matrix(
    centre: np.ndarray,
    width: float,
    out_size: tuple[int, int],
    pipeline: HeatmapPipeline,
    angle: float = 0.0,
) -> np.ndarray:
    """2x3 matrix A: output pixel (x, y) of an `out_size` = (height, width) grid -> source pixel
    `A @ (x, y, 1)`, both in pixel indices. The crop is `width` source pixels wide, centred on
    `centre`, turned by `angle` radians (positive turns the crop's x axis towards the image's y axis).

    The inverse of the official `get_affine_transform(center, scale, rot, output_size)`; its height
    follows from the width (the box already has the output's aspect). Use it with
    `cv2.WARP_INVERSE_MAP` to crop, and directly to map heatmap cells back to the image.
    """
    out_h, out_w = out_size
    if pipeline.aligned:
        k = (width - 1.0) / (out_w - 1.0)  # source pixels per output pixel
        mid = np.array([(out_w - 1) * 0.5, (out_h - 1) * 0.5])
    else:
        k = width / out_w
        mid = np.array([out_w * 0.5, out_h * 0.5])
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]]) * k  # [2, 2]
    return np.concatenate([rot, (np.asarray(centre, np.float64) - rot @ mid)[:, None]], axis=1)


def warp_crop(image: np.ndarray, matrix: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """The crop [H, W, C] of `image` that `crop_matrix` describes: bilinear, zeros outside (as the official
    `cv2.warpAffine` with its default border)."""
    out_h, out_w = out_size
    return cv2.warpAffine(
        image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT
    )


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points [..., 2] through a 2x3 matrix."""
    out: np.ndarray = points @ matrix[:, :2].T + matrix[:, 2]
    return out


def normalise(crops: np.ndarray) -> np.ndarray:
    """uint8 RGB crops [P, H, W, 3] -> float32 [P, 3, H, W] with the ImageNet mean/std (the official ToTensor +
    Normalize)."""
    x: np.ndarray = crops.astype(np.float32) / 255.0
    x = (x - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def flip_back(heatmaps: np.ndarray, pairs: tuple[tuple[int, int], ...] = COCO_FLIP_PAIRS) -> np.ndarray:
    """Heatmaps [B, J, h, w] of mirrored inputs -> heatmaps of the unmirrored input (columns reversed, left and
    right joints swapped)."""
    out = heatmaps[..., ::-1].copy()
    for a, b in pairs:
        out[:, [a, b]] = out[:, [b, a]]
    return out


def merge_flipped(
    heatmaps: np.ndarray,
    flipped: np.ndarray,
    pipeline: HeatmapPipeline,
    pairs: tuple[tuple[int, int], ...] = COCO_FLIP_PAIRS,
) -> np.ndarray:
    """The flip test: the mean of the heatmaps [B, J, h, w] and those of the mirrored input, mapped back."""
    back = flip_back(flipped, pairs)
    if pipeline.shift_heatmap:
        back[..., 1:] = back[..., :-1].copy()
    merged: np.ndarray = (heatmaps + back) * 0.5
    return merged


def argmax_cells(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps [B, J, h, w] -> (cells [B, J, 2] as x, y floats, maxima [B, J]). A heatmap whose maximum is not
    positive gets the cell (0, 0), as the official `get_max_preds`."""
    b, j, _, w = heatmaps.shape
    flat = heatmaps.reshape(b, j, -1)
    idx = flat.argmax(-1)
    maxima = flat.max(-1)
    cells = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)
    cells[maxima <= 0] = 0.0
    return cells, maxima


def decode_quarter(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mmpose's 'default' decoding: argmax + 0.25 cell towards the higher neighbour, away from the border.
    Returns (x, y in heatmap cells [B, J, 2], maxima [B, J])."""
    cells, maxima = argmax_cells(heatmaps)
    _, _, h, w = heatmaps.shape
    px = np.floor(cells[..., 0] + 0.5).astype(int)
    py = np.floor(cells[..., 1] + 0.5).astype(int)
    inside = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    bi, ji = np.nonzero(inside)
    xs, ys = px[bi, ji], py[bi, ji]
    dx = heatmaps[bi, ji, ys, xs + 1] - heatmaps[bi, ji, ys, xs - 1]
    dy = heatmaps[bi, ji, ys + 1, xs] - heatmaps[bi, ji, ys - 1, xs]
    cells[bi, ji, 0] += 0.25 * np.sign(dx)
    cells[bi, ji, 1] += 0.25 * np.sign(dy)
    return cells, maxima


def _blur(heatmaps: np.ndarray, kernel: int) -> np.ndarray:
    """DARK's modulation: each map blurred with zero padding, rescaled to keep its maximum (float64)."""
    border = (kernel - 1) // 2
    b, j, h, w = heatmaps.shape
    out = np.empty((b, j, h, w), np.float64)
    for bi in range(b):
        for ji in range(j):
            hm = heatmaps[bi, ji].astype(np.float64)
            padded = np.zeros((h + 2 * border, w + 2 * border))
            padded[border:-border, border:-border] = hm
            blurred = cv2.GaussianBlur(padded, (kernel, kernel), 0)[border:-border, border:-border]
            peak = blurred.max()
            out[bi, ji] = blurred * (hm.max() / peak) if peak != 0 else blurred
    return out


def decode_dark(heatmaps: np.ndarray, kernel: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """DARK decoding (Zhang et al., CVPR 2020), as TransPose and TokenPose test: argmax, then one Newton step
    on the log of the blurred heatmap (central differences, second derivatives over two cells), away from
    the border. Returns (x, y in heatmap cells [B, J, 2], maxima [B, J] of the unblurred heatmaps)."""
    cells, maxima = argmax_cells(heatmaps)
    _, _, h, w = heatmaps.shape
    logs = np.log(np.maximum(_blur(heatmaps, kernel), 1e-10))
    px = cells[..., 0].astype(int)
    py = cells[..., 1].astype(int)
    inside = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    bi, ji = np.nonzero(inside)
    x, y = px[bi, ji], py[bi, ji]
    m = logs[bi, ji]  # [N, h, w]
    n = np.arange(len(bi))

    def at(dy: int, dx: int) -> np.ndarray:
        values: np.ndarray = m[n, y + dy, x + dx]
        return values

    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    hxx = 0.25 * (at(0, 2) - 2 * at(0, 0) + at(0, -2))
    hyy = 0.25 * (at(2, 0) - 2 * at(0, 0) + at(-2, 0))
    hxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = hxx * hyy - hxy**2
    ok = det != 0
    safe = np.where(ok, det, 1.0)
    # offset = -H^-1 g, H = [[hxx, hxy], [hxy, hyy]]
    ox = -(hyy * gx - hxy * gy) / safe
    oy = -(-hxy * gx + hxx * gy) / safe
    cells[bi, ji, 0] += np.where(ok, ox, 0.0)
    cells[bi, ji, 1] += np.where(ok, oy, 0.0)
    return cells, maxima


def decode(heatmaps: np.ndarray, pipeline: HeatmapPipeline) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps [B, J, h, w] -> (x, y in heatmap cells [B, J, 2], scores [B, J]) by the pipeline's decoder."""
    if pipeline.decoder == "dark":
        return decode_dark(heatmaps, pipeline.blur_kernel)
    return decode_quarter(heatmaps)


def pose_score(scores: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """The official COCO rescoring's keypoint part: the mean of the keypoint scores above `threshold`
    (`in_vis_thre`), 0 when none is; [..., J] -> [...]."""
    above = scores > threshold
    total = np.where(above, scores, 0.0).sum(-1)
    count = above.sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)
