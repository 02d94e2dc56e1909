"""The HTTP API: `create_app(engine, settings)` (FastAPI), API keys with scopes, limits, metrics."""

from shoploop.api.app import create_app
from shoploop.api.settings import ApiSettings, generate_demo_keys, settings_for_home

__all__ = ["ApiSettings", "create_app", "generate_demo_keys", "settings_for_home"]
