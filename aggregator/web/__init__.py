"""The HTTP app: public feeds and pages (and, later, the editors' desk). Thin: it asks the
store for stories and the publish layer for bytes.
"""

from aggregator.web.app import create_app

__all__ = ["create_app"]
