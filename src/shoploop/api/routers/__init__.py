"""One router per resource group; `shoploop.api.app.create_app` includes them."""
