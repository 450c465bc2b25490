"""Image crops per camera: a rectangle ``(x, y, width, height)`` in pixels of the full frame.

Chosen with the mouse (``cv2.selectROI`` in an OpenCV window), typed at the console, or
given as numbers in config; always validated against the image size and previewed
(the rectangle drawn on the frame beside the cropped result, saved as a PNG and shown
when a display is available).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from calibration.errors import CalibrationError

log = logging.getLogger(__name__)


def validate_crop(crop: Sequence[float], image_size: tuple[int, int], min_size: int = 16) -> tuple[int, int, int, int]:
    """Check a crop against an image.

    Args:
        crop: ``(x, y, width, height)``, pixels, top-left origin.
        image_size: ``(width, height)`` of the full image, pixels.
        min_size: smallest accepted crop side, pixels.

    Returns:
        The crop as four ints.

    Raises:
        CalibrationError: wrong length, non-integer, outside the image, or too small.
    """
    values = list(crop)
    if len(values) != 4:
        raise CalibrationError(f"a crop is [x, y, width, height] in pixels; got {values}")
    try:
        if any(float(v) != int(float(v)) for v in values):
            raise ValueError
        x, y, w, h = (int(float(v)) for v in values)
    except (TypeError, ValueError):
        raise CalibrationError(f"crop values must be whole pixels; got {values}") from None
    W, H = image_size
    if w < min_size or h < min_size:
        raise CalibrationError(f"crop {values} is smaller than {min_size}x{min_size} px")
    if x < 0 or y < 0 or x + w > W or y + h > H:
        raise CalibrationError(f"crop {values} leaves the {W}x{H} image (need 0 <= x, x+w <= {W}, 0 <= y, y+h <= {H})")
    return x, y, w, h


def apply_crop(image: np.ndarray, crop: Sequence[int]) -> np.ndarray:
    """The cropped view of an (H, W[, C]) image."""
    x, y, w, h = crop
    return image[y:y + h, x:x + w]


def preview_crop(image: np.ndarray, crop: Sequence[int], label: str = "") -> np.ndarray:
    """The full frame with the crop outlined, beside the crop itself (scaled to the same height).

    Args:
        image: (H, W, 3) uint8 RGB.
        crop: a validated crop.
        label: text written in the corner (e.g. the camera name).

    Returns:
        (H, W + w', 3) uint8 RGB preview.
    """
    x, y, w, h = crop
    full = np.ascontiguousarray(image.copy())
    cv2.rectangle(full, (x, y), (x + w - 1, y + h - 1), (255, 0, 0), 2)
    if label:
        cv2.putText(full, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 0), 2)
    cut = apply_crop(image, crop)
    H = image.shape[0]
    cut = cv2.resize(cut, (max(1, int(round(w * H / h))), H), interpolation=cv2.INTER_LINEAR)
    return np.concatenate([full, cut], axis=1)


def have_display() -> bool:
    """True when an OpenCV window can open (an X/Wayland display is set)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def select_crop_window(image: np.ndarray, window: str = "select crop") -> tuple[int, int, int, int]:
    """Drag a rectangle with the mouse (``cv2.selectROI``); Enter/Space accepts, c cancels.

    Raises:
        CalibrationError: no display, or the selection was cancelled/empty.
    """
    if not have_display():
        raise CalibrationError("no display for an OpenCV window; use mode=console or give crops as numbers")
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    x, y, w, h = cv2.selectROI(window, bgr, showCrosshair=True, fromCenter=False)
    cv2.destroyWindow(window)
    if w == 0 or h == 0:
        raise CalibrationError("crop selection cancelled")
    return validate_crop((x, y, w, h), (image.shape[1], image.shape[0]))


def select_crop_console(
    image: np.ndarray,
    preview_path: Path,
    ask: Callable[[str], str] = input,
    max_tries: int = 5,
) -> tuple[int, int, int, int]:
    """Type ``x y width height`` at the console; each try writes a preview PNG to check.

    Args:
        image: (H, W, 3) uint8 RGB frame.
        preview_path: PNG written after every valid entry (open it in an image viewer).
        ask: prompt function (``input``; scripted in tests).
        max_tries: give up after this many entries.

    Returns:
        The accepted crop.
    """
    size = (image.shape[1], image.shape[0])
    for _ in range(max_tries):
        text = ask(f"crop for a {size[0]}x{size[1]} image as 'x y width height' (pixels): ").strip()
        try:
            crop = validate_crop(text.replace(",", " ").split(), size)
        except CalibrationError as exc:
            print(f"  {exc}")
            continue
        save_preview(preview_crop(image, crop), preview_path)
        if ask(f"  preview written to {preview_path}; accept? [y/N] ").strip().lower() in ("y", "yes"):
            return crop
    raise CalibrationError(f"no crop accepted after {max_tries} tries")


def save_preview(rgb: np.ndarray, path: Path) -> Path:
    """Write an RGB image as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise CalibrationError(f"could not write preview {path}")
    return path
