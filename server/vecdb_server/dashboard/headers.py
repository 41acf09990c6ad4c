"""HTTP header rules shared by the dashboard's WSGI application (web.py) and its HTTP
server (httpd.py, for the errors it answers itself): the security headers every answer
carries, and the host name of a ``Host`` header."""
from __future__ import annotations

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "Server": "vecdb-dashboard",
}


def host_name(value: str) -> str:
    """The host of a ``Host`` header without its port: ``[::1]:8080`` and ``[::1]`` ->
    ``::1``, ``localhost:80`` and ``localhost`` -> ``localhost``; a bare IPv6 literal
    (no brackets, so no port) stays whole."""
    value = value.strip()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value
