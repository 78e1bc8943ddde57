"""The OpenAPI description (``openapi.json`` beside this module) at ``/api/openapi.json``; Swagger UI at ``/swagger/``.

Both are public: the description is not secret (upstream serves its swagger only with ``-dev``; we
always do). Swagger UI's files are not part of this package: they come from the npm package
``swagger-ui-dist``, pinned in ``web/package.json`` and installed by ``npm ci`` (run-tests.sh and
startDemo.sh do it). They are looked up in this order:

1. ``$CC_SWAGGER_UI_DIR`` (the folder holding ``swagger-ui-bundle.js``); when it is set, only there;
2. ``swagger-ui-dist`` in the node_modules folder of the web UI's other assets
   (:func:`cc_backend.server.web.assets.find_node_modules`).

Without them, ``/swagger/`` is a short page that says how to install them and links the raw description.
"""

from __future__ import annotations

import html
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bottle

if TYPE_CHECKING:
    from cc_backend.runtime import Runtime

SPEC_FILE = Path(__file__).with_name("openapi.json")
SPEC_URL = "/api/openapi.json"
ASSETS_ENV = "CC_SWAGGER_UI_DIR"
_MARKER = "swagger-ui-bundle.js"


@lru_cache(maxsize=1)
def spec_bytes() -> bytes:
    """The description as shipped, byte for byte (served as is, so clients see exactly the file)."""
    return SPEC_FILE.read_bytes()


def find_assets() -> Path | None:
    """The swagger-ui-dist folder (see the module docstring), or None when it is not installed."""
    from cc_backend.server.web.assets import find_node_modules

    override = os.environ.get(ASSETS_ENV)
    # An explicit setting that is wrong must show up as "not installed", not be papered over by another copy.
    if override:
        folder = Path(override)
    else:
        node_modules = find_node_modules("swagger-ui-dist")
        if node_modules is None:
            return None
        folder = node_modules / "swagger-ui-dist"
    return folder.resolve() if (folder / _MARKER).is_file() else None


SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cc-backend REST API</title>
<link rel="stylesheet" href="/swagger/swagger-ui.css">
<link rel="icon" type="image/png" href="/swagger/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/swagger/swagger-ui-bundle.js"></script>
<script src="/swagger/swagger-ui-standalone-preset.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "{spec_url}",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout"
}});
</script>
</body>
</html>
"""

MISSING_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>cc-backend REST API</title>
<style>body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 3rem auto; line-height: 1.5; }}
code, pre {{ background: #f4f5f7; padding: .1rem .3rem; }}</style>
</head>
<body>
<h1>cc-backend REST API</h1>
<p>The description of this API is at <a href="{spec_url}">{spec_url}</a> (OpenAPI 3.1, JSON).</p>
<p>The API browser (Swagger UI) is not installed on this server. Install it from the source tree with</p>
<pre>cd web &amp;&amp; npm ci --ignore-scripts</pre>
<p>or point <code>{env}</code> at a folder holding the files of the npm package <code>swagger-ui-dist</code>,
and restart the server.</p>
</body>
</html>
"""


def mount(app: bottle.Bottle, runtime: Runtime) -> None:
    """``/api/openapi.json``, ``/swagger``, ``/swagger/`` and ``/swagger/<file>``; all without authentication."""
    assets = find_assets()  # once: an install needs a restart, as any other change of the server's files

    def openapi() -> bytes:
        bottle.response.content_type = "application/json"
        return spec_bytes()

    def swagger_redirect() -> None:
        bottle.redirect("/swagger/", 301)

    def swagger_page() -> str:
        bottle.response.content_type = "text/html; charset=utf-8"
        if assets is None:
            return MISSING_PAGE.format(spec_url=SPEC_URL, env=html.escape(ASSETS_ENV))
        return SWAGGER_PAGE.format(spec_url=SPEC_URL)

    def swagger_asset(file: str) -> Any:
        if assets is None:
            return bottle.HTTPError(404, "Swagger UI is not installed; see /swagger/")
        # static_file refuses paths that leave the root folder (../), and sets type, length and caching headers.
        return bottle.static_file(file, root=str(assets))

    app.route(SPEC_URL, "GET", openapi, auth=None)
    app.route("/swagger", "GET", swagger_redirect, auth=None)
    app.route("/swagger/", "GET", swagger_page, auth=None)
    app.route("/swagger/<file:path>", "GET", swagger_asset, auth=None)
