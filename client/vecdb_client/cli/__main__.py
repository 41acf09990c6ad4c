"""``python -m vecdb_client.cli`` = ``vecdbctl``."""
import sys

from . import main

sys.exit(main())
