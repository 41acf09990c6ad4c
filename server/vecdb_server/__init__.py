"""vecdb_server: the gRPC front end of the vecdb engine (``vecdb-server`` console script)."""
__version__ = "0.1.0"
