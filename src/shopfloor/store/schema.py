"""The full schema: importing this module registers every area's tables on the shared ``metadata``."""

from .tables import metadata  # noqa: F401
from . import capacity_tables  # noqa: F401,E402
