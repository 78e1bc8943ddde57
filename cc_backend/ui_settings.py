"""The per-user UI settings a user edits on the settings page: their choices and the checks of submitted values."""

from __future__ import annotations

import json
import re
from typing import Any

from cc_backend.errors import InvalidInput

#: Colour schemes for the lines of time series plots (``plotConfiguration_colorScheme``), first the default.
COLOR_SCHEMES: dict[str, list[str]] = {
    # upstream's default (ui.plot-configuration.color-scheme)
    "Default": ["#00bfff", "#0000ff", "#ff00ff", "#ff0000", "#ff8000", "#ffff00", "#80ff00"],
    # matplotlib's "tab10"
    "Tableau": ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf"],
    # Okabe and Ito: distinguishable with the common colour vision deficiencies
    "Colour blind safe": ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000"],
    # Paul Tol's "bright", also colour blind safe
    "Bright": ["#4477aa", "#66ccee", "#228833", "#ccbb44", "#ee6677", "#aa3377", "#bbbbbb"],
    # viridis, sampled: ordered from dark to light, readable in grey print
    "Viridis": ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
                "#b5de2b", "#fde725"],
    "Warm": ["#7f0000", "#b30000", "#d7301f", "#ef6548", "#fc8d59", "#fdbb84", "#e6ab02", "#a6761d"],
}

#: What the settings page offers for the numeric plot settings (inclusive ranges).
LINE_WIDTH_RANGE = (1, 5)
PLOTS_PER_ROW_RANGE = (1, 6)
#: The on/off settings of the page.
BOOLEAN_SETTINGS = ("plotConfiguration_colorBackground", "jobList_usePaging", "nodeList_usePaging",
                    "jobList_showFootprint", "jobView_showPolarPlot", "jobView_showFootprint",
                    "jobView_showRoofline", "jobView_showStatTable")

_RGB = re.compile(r"rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)")
_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}|rgba?\([0-9., %]+\)|[a-zA-Z]{3,20}")


def _hex(color: str) -> str:
    """``rgb(255,0,0)`` (upstream's schemes are written so) or ``#FF0000`` as ``#ff0000``."""
    found = _RGB.fullmatch(color.strip())
    if found:
        return "#" + "".join(f"{min(255, int(part)):02x}" for part in found.groups())
    return color.strip().lower()


def color_scheme_name(colors: Any) -> str | None:
    """The name of the scheme ``colors`` is (compared as hex, so upstream's ``rgb()`` lists match), else None."""
    if not isinstance(colors, list) or not all(isinstance(c, str) for c in colors):
        return None
    wanted = [_hex(c) for c in colors]
    return next((name for name, scheme in COLOR_SCHEMES.items() if scheme == wanted), None)


def css_colors(colors: Any) -> list[str]:
    """The entries of a stored colour scheme that are plain CSS colours (safe to put into a style attribute)."""
    if not isinstance(colors, list):
        return []
    return [c.strip() for c in colors if isinstance(c, str) and _COLOR.fullmatch(c.strip())]


def _int_in(key: str, value: Any, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or \
            not low <= value <= high:
        raise InvalidInput(f"value of {key} must be a whole number from {low} to {high}, got {value!r}",
                           field="value")


def check_ui_setting(key: str, value: Any) -> None:
    """Refuse (InvalidInput naming ``value``) a decoded value that the setting ``key`` cannot hold.

    Only the settings the web UI interprets are checked; any other key is stored as upstream stores it.
    """
    if key == "plotConfiguration_lineWidth":
        _int_in(key, value, LINE_WIDTH_RANGE)
    elif key == "plotConfiguration_plotsPerRow":
        _int_in(key, value, PLOTS_PER_ROW_RANGE)
    elif key in BOOLEAN_SETTINGS:
        if not isinstance(value, bool):
            raise InvalidInput(f"value of {key} must be true or false, got {value!r}", field="value")
    elif key == "plotConfiguration_colorScheme":
        if not isinstance(value, list) or not value or len(value) > 64 or \
                not all(isinstance(c, str) and _COLOR.fullmatch(c.strip()) for c in value):
            raise InvalidInput(f"value of {key} must be a list of 1 to 64 CSS colours (\"#1f77b4\"), got {value!r}",
                               field="value")


def decoded(value: str) -> Any:
    """The JSON text ``value`` decoded (InvalidInput naming ``value`` if it is not JSON)."""
    try:
        return json.loads(value)
    except ValueError as exc:
        raise InvalidInput(f"value must be JSON text (e.g. \"3\", \"true\", '\"abc\"', '[1,2]'): {exc}",
                           field="value") from None
