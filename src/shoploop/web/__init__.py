"""Server-rendered storefront and merchandiser dashboard (Jinja2, local static files, no build step)."""

from shoploop.web.routes import mount_web

__all__ = ["mount_web"]
