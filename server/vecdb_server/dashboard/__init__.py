"""The web dashboard (docs/dashboard.md): browse, search and map collections in a browser,
served by vecdb-server itself on ``dashboard_port`` behind the same API keys as gRPC."""
from .httpd import Dashboard, start_dashboard

__all__ = ["Dashboard", "start_dashboard"]
