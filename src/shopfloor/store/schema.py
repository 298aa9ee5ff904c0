"""The full schema: importing this module registers every area's tables on the shared ``metadata``."""

from .tables import metadata  # noqa: F401
from . import payments_tables  # noqa: F401,E402
from . import promise_tables  # noqa: F401,E402
from . import restock_tables  # noqa: F401,E402
from . import capacity_tables  # noqa: F401,E402
from . import tower_tables  # noqa: F401,E402
from . import integrations_tables  # noqa: F401,E402
from . import analytics_tables  # noqa: F401,E402
