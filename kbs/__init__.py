"""Veritee's key broker (KBS): trustee's KBS protocol 0.4.0 over FastAPI, state in one SQL database.

Run it with `kbs init DIR` then `kbs serve --config DIR/kbs.toml`; `kbs.app.create_app(settings)` builds the ASGI
application for embedding.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
