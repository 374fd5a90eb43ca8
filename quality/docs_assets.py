"""Data Docs that work offline: the CSS, scripts and fonts that GE's page templates load from
CDNs are vendored in quality/gx/plugins/custom_data_docs/vendor/ (versions, licenses and how
they were fetched: vendor/README.md) and copied into each site under static/vendor/.

GE 1.24 has no setting for where its pages load Bootstrap, jQuery, bootstrap-table, Vega or
Font Awesome from (the URLs are literals in render/view/templates/*.j2), and a template of the
same name in `custom_views_directory` does not win (GE puts that loader last). So our page
views (quality/docs_view.py) read GE's own templates through `OfflineTemplateLoader`, which
swaps each known CDN URL for the vendored copy, relative to the page, and the site builder
(`OfflineSiteBuilder`, named in quality/gx/great_expectations.yml) copies the copies.

Offline, without this, the pages render unstyled and the index lists no validation at all:
its table is drawn by bootstrap-table, a script that never loads."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from great_expectations.render.renderer.site_builder import SiteBuilder
from jinja2 import BaseLoader, Environment, pass_context
from jinja2.runtime import Context

VENDOR_DIR = Path(__file__).resolve().parent / "gx" / "plugins" / "custom_data_docs" / "vendor"
SITE_VENDOR = ("static", "vendor")  # where the copies land inside a Data Docs site

# Each URL that GE 1.24.1's templates load (page.j2, page_minimal.j2, index_page.j2,
# js_script_imports.j2) -> its copy under VENDOR_DIR. The files are the npm packages' own
# (popper and bootstrap.js match the sha384 pins of the templates, tests/test_quality_docs.py);
# where a template names a non-minified file or 1.19.0 of a bootstrap-table extension, the
# copy is the minified 1.19.1 file of the same package.
CDN_COPIES: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "bootstrap-4.3.1/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "bootstrap-4.3.1/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table-1.19.1/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table-1.19.1/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css":
        "bootstrap-table-1.19.1/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css":
        "bootstrap-table-1.19.1/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js":
        "bootstrap-table-1.19.1/bootstrap-table-filter-control.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css":
        "bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js":
        "bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css":
        "bootstrap-dark-1.1.0/bootstrap-prefers-dark.min.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "popper.js-1.12.9/popper.min.js",
    # jsdelivr serves the newest release of the major version: 5.33.1, 5.23.0, 6.29.0 today
    "https://cdn.jsdelivr.net/npm/vega@5": "vega-5.33.1/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite-5.23.0/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed-6.29.0/vega-embed.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "fontawesome-free-6.6.0/css/all.min.css",
}
# top_navbar.j2 loads the GE logo from S3 (with a tracking query); the same image ships in GE's
# own static/images/, which every site already has.
GE_IMAGES_URL = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"

# favicon.j2 climbs one folder too few from a validation page (GE 1.24.1); the page's root
# is known here.
GE_FAVICON = '{{ static_images_dir + "favicon.ico" }}'

# The SRI pins name the CDN's bytes; a page opened from file:// has an opaque origin, and
# Chromium refuses a `crossorigin` script from file:// (CORS) even when the hash matches.
_SRI = re.compile(r'\s+integrity="[^"]*"\s+crossorigin="anonymous"')


@pass_context
def site_root(ctx: Context) -> str:
    """The relative path from the page being rendered to the site's root folder. GE writes a
    suite page to expectations/<suite dotted parts>.html and a result page to
    validations/<suite parts>/<run name>/<run time>/<batch>.html; the index is at the root."""
    renderer = ctx.get("renderer_type") or ""
    suite = ctx.get("expectation_suite_name") or ""
    depth = 0
    if "ValidationResults" in renderer or "ProfilingResults" in renderer:
        depth = suite.count(".") + 4
    elif "ExpectationSuite" in renderer:
        depth = suite.count(".") + 1
    return "../" * depth or "./"


def offline_source(source: str) -> str:
    """A GE template's source with its CDN assets replaced by the site's vendored copies."""
    for url, copy in CDN_COPIES.items():
        local = "{{ distillery_site_root() }}" + "/".join(SITE_VENDOR) + "/" + copy
        source = source.replace(f'"{url}"', f'"{local}"')
    source = source.replace(f'"{GE_IMAGES_URL}"', 'distillery_site_root() ~ "static/images/"')
    source = source.replace(GE_FAVICON, "{{ distillery_site_root() }}static/images/favicon.ico")
    return _SRI.sub("", source)


class OfflineTemplateLoader(BaseLoader):
    """Wraps a view's loader: every template it finds comes back through `offline_source`."""

    def __init__(self, inner: BaseLoader) -> None:
        self.inner = inner

    def get_source(self, environment: Environment,
                   template: str) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = self.inner.get_source(environment, template)
        return offline_source(source), filename, uptodate

    def list_templates(self) -> list[str]:
        return self.inner.list_templates()


def make_offline(env: Environment) -> None:
    """Point a GE view's Jinja environment at the vendored assets."""
    if env.loader is not None and not isinstance(env.loader, OfflineTemplateLoader):
        env.loader = OfflineTemplateLoader(env.loader)
    env.globals["distillery_site_root"] = site_root


def vendored_files() -> list[Path]:
    return sorted(p for p in VENDOR_DIR.rglob("*") if p.is_file())


def copy_vendored(target_store: Any) -> int:
    """Copy the vendored files (licenses included) into a site's static/vendor/, through the
    site's own static-assets backend; returns how many were written. Folders are named with
    their versions, so a file already there is the same file and is skipped: a docs update
    (one per validation) does not rewrite 2 MB."""
    backend = target_store.store_backends["static_assets"]
    written = 0
    for path in vendored_files():
        key = (*SITE_VENDOR, *path.relative_to(VENDOR_DIR).parts)
        if not backend.has_key(key):
            backend.set(key, path.read_bytes())
            written += 1
    return written


class OfflineSiteBuilder(SiteBuilder):
    """GE's SiteBuilder that also puts the vendored assets into the site."""

    def build(self, resource_identifiers: Any = None, build_index: bool = True) -> Any:
        built = super().build(resource_identifiers=resource_identifiers,
                              build_index=build_index)
        copy_vendored(self.target_store)
        return built
