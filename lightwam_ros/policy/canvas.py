"""Camera images -> one RGB canvas -> the model's [-1, 1] input, as Light-WAM was trained.

Per camera: rotate (multiples of 90 degrees, counter-clockwise), optionally centre-crop to the
cell's aspect ratio, resize to the cell and paste into the canvas.  The resize is the authors':
bilinear with antialiasing (torchvision ``Resize`` with antialias on, which calls
``interpolate(mode="bilinear", antialias=True)``); without antialiasing a shrunk camera image
aliases and the model sees other pixels than it was trained on.  It runs on precomputed, cached
index and weight tables, so it costs a few milliseconds per frame on a CPU at policy rate.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from lightwam_ros.policy.embodiment import CameraSpec, EmbodimentSpec


def build_canvas(images: Mapping[str, np.ndarray], spec: EmbodimentSpec) -> np.ndarray:
    """Compose the canvas [H, W, 3] uint8 from HxWx3 uint8 RGB images keyed by camera role.

    Roles not in the spec are ignored; a missing role or a malformed image raises ValueError
    before anything is computed.
    """
    canvas_spec = spec.canvas
    for camera in canvas_spec.cameras:
        if camera.role not in images:
            raise ValueError(
                f"{spec.name}: no image for camera role {camera.role!r}; "
                f"got {sorted(images)}, expected {list(canvas_spec.roles)}"
            )
        _check_image(f"camera {camera.role!r}", images[camera.role])
    canvas = np.empty((canvas_spec.height, canvas_spec.width, 3), dtype=np.uint8)
    canvas[0] = canvas_spec.fill_rgb  # one row, then row copies: broadcasting a 3-tuple is slow
    canvas[1:] = canvas[0]
    for camera in canvas_spec.cameras:
        cell = canvas[camera.top : camera.top + camera.height, camera.left : camera.left + camera.width]
        _render_camera(images[camera.role], camera, out=cell)
    return canvas


def canvas_layout(spec: EmbodimentSpec) -> dict:
    """What the model sees of an embodiment's cameras, as plain JSON: the canvas size and each
    camera's cell, rotation and crop (not its source size, which a deployment may change). A
    checkpoint records it, so a model never runs on a canvas other than the one it learned."""
    canvas = spec.canvas
    return {
        "height": canvas.height,
        "width": canvas.width,
        "fill_rgb": list(canvas.fill_rgb),
        "cells": [
            {
                "role": c.role,
                "top": c.top,
                "left": c.left,
                "height": c.height,
                "width": c.width,
                "rotation_deg": c.rotation_deg,
                "center_crop": c.center_crop,
            }
            for c in canvas.cameras
        ],
    }


def canvas_to_model_input(canvas: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] canvas -> float32 [3, H, W] in [-1, 1] (x / 127.5 - 1)."""
    _check_image("canvas", canvas)
    chw = np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32)
    chw /= 127.5
    chw -= 1.0
    return chw


def _check_image(label: str, image: object) -> None:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{label}: expected a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{label}: expected an HxWx3 RGB image, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{label}: empty image of shape {image.shape}")
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating) and not np.all(np.isfinite(image)):
            raise ValueError(f"{label}: image contains non-finite values (and must be uint8)")
        raise ValueError(f"{label}: expected dtype uint8, got {image.dtype}")


def _render_camera(image: np.ndarray, camera: CameraSpec, out: np.ndarray) -> None:
    """Rotate, crop and resize one camera image into its canvas cell ``out`` (a view)."""
    if camera.rotation_deg:
        image = np.rot90(image, k=camera.rotation_deg // 90)
    if camera.center_crop:
        image = center_crop_to_aspect(image, camera.height, camera.width)
    resize_bilinear(image, camera.height, camera.width, out=out)


def center_crop_to_aspect(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The largest centred window of ``image`` whose aspect ratio is width:height (a view)."""
    src_h, src_w = image.shape[:2]
    if src_w * height > src_h * width:  # too wide: trim columns
        crop_w = max(1, round(src_h * width / height))
        left = (src_w - crop_w) // 2
        return image[:, left : left + crop_w]
    crop_h = max(1, round(src_w * height / width))
    top = (src_h - crop_h) // 2
    return image[top : top + crop_h]


def resize_bilinear(image: np.ndarray, height: int, width: int, out: np.ndarray | None = None) -> np.ndarray:
    """Antialiased bilinear resize of a uint8 [h, w, C] image to [height, width, C] uint8 (rounded).

    The filter is the authors' (torchvision ``Resize``, antialias on): when shrinking, the triangle
    kernel widens by the scale factor so every source pixel contributes; enlarging is plain
    bilinear. Separable: columns on the [h, w*C] view first, then rows.
    """
    src_h, src_w, channels = image.shape
    if out is None:
        out = np.empty((height, width, channels), dtype=np.uint8)
    if (src_h, src_w) == (height, width):
        out[...] = image
        return out
    flat = image.reshape(src_h, src_w * channels)
    gathered, cols, term, rows, rows_term = _workspace(src_h, height, width * channels)
    col_index, col_weight = _column_taps(src_w, width, channels)
    for tap in range(col_index.shape[1]):
        np.take(flat, col_index[:, tap], axis=1, out=gathered)
        target = cols if tap == 0 else term
        np.multiply(gathered, col_weight[:, tap], out=target)
        if tap:
            cols += term
    row_index, row_weight = _axis_taps(src_h, height)
    for tap in range(row_index.shape[1]):
        target = rows if tap == 0 else rows_term
        np.take(cols, row_index[:, tap], axis=0, out=target)
        target *= row_weight[:, tap, None]
        if tap:
            rows += rows_term
    # Normalised non-negative weights keep the result within [0, 255]: adding 0.5 and truncating
    # (the float -> uint8 cast) rounds half up without a clip.
    rows += 0.5
    np.copyto(out, rows.reshape(height, width, channels), casting="unsafe")
    return out


_WORKSPACES = threading.local()
_MAX_WORKSPACES = 16


def _workspace(src_rows: int, dst_rows: int, row_len: int) -> tuple[np.ndarray, ...]:
    """Per-thread scratch buffers for one (source rows, output size) combination: fresh
    multi-megabyte arrays per frame would cost more in page faults than the arithmetic."""
    cache = getattr(_WORKSPACES, "buffers", None)
    if cache is None:
        cache = _WORKSPACES.buffers = {}
    key = (src_rows, dst_rows, row_len)
    if key not in cache:
        if len(cache) >= _MAX_WORKSPACES:
            cache.clear()
        cache[key] = (
            np.empty((src_rows, row_len), np.uint8),
            np.empty((src_rows, row_len), np.float32),
            np.empty((src_rows, row_len), np.float32),
            np.empty((dst_rows, row_len), np.float32),
            np.empty((dst_rows, row_len), np.float32),
        )
    return cache[key]


@lru_cache(maxsize=64)
def _axis_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights [dst, taps] of the antialiased triangle filter along one axis.

    Output pixel i is centred at scale * (i + 0.5) in source coordinates; its window spans the
    kernel's support (the scale when shrinking, 1 when enlarging) rounded to whole pixels and
    clipped to the image, and its weights are normalised over that window. Taps beyond a
    window's end get weight 0 (and a valid index).
    """
    scale = src / dst
    support = max(scale, 1.0)
    centres = scale * (np.arange(dst, dtype=np.float64) + 0.5)
    first = np.maximum((centres - support + 0.5).astype(np.intp), 0)
    stop = np.minimum((centres + support + 0.5).astype(np.intp), src)
    index = first[:, None] + np.arange(int((stop - first).max()))
    distance = (index + 0.5 - centres[:, None]) / support
    weight = np.where(index < stop[:, None], np.clip(1.0 - np.abs(distance), 0.0, None), 0.0)
    weight /= weight.sum(axis=1, keepdims=True)
    return _frozen(np.minimum(index, src - 1), weight.astype(np.float32))


@lru_cache(maxsize=64)
def _column_taps(src: int, dst: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``_axis_taps`` expanded to the interleaved channels of a [h, w*C] row."""
    index, weight = _axis_taps(src, dst)
    offsets = np.arange(channels)
    return _frozen(
        (index[:, None, :] * channels + offsets[None, :, None]).reshape(dst * channels, -1),
        np.repeat(weight, channels, axis=0),
    )


def _frozen(index: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cached tables are shared between calls: make accidental writes fail loudly."""
    for table in (index, weight):
        table.setflags(write=False)
    return index, weight
