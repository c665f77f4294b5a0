"""The integration tests, in the order they run. Each module registers its
tests with base.case; ALL lists them all. The fault suite (faults.py:
hostile and broken peers) runs last."""

from . import (cli, header, backends, inbound, routes, doctor, topology, pools,  # noqa: F401
               health, reload, stats, access_log, drain, service, stream, lifecycle, demo,
               faults)
from .base import ALL  # noqa: F401
