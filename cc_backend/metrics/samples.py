"""Metric samples between numpy arrays (the metric store's float32, NaN for gaps) and the JSON shape (floats, None)."""

from __future__ import annotations

import numpy as np


def decimal_values(data: np.ndarray) -> np.ndarray:
    """Samples as float64 rounded to float32's 7 significant digits: 0.1 stays 0.1 in JSON, not 0.10000000149011612.

    Without it every stored sample doubles its length in JSON answers and in the archive's data.json.
    """
    values = np.asarray(data, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = 10.0 ** (6 - np.floor(np.log10(np.abs(values))))
        rounded = np.round(values * scale) / scale
    return np.where(np.isfinite(rounded), rounded, values)


def sample_list(data: np.ndarray) -> list[float | None]:
    """The samples as a JSON list: decimal values, None where a sample is missing (NaN)."""
    values = decimal_values(data)
    missing = np.isnan(values)
    if not missing.any():
        return values.tolist()
    shown = values.astype(object)
    shown[missing] = None
    return shown.tolist()
