"""The integration tests, in the order they run: each module registers its
tests with base.case as it is imported, so the order of this list is the
order of the run; ALL lists them all. The fault suite (faults.py: hostile
and broken peers) runs last."""

from . import (cli, config_model, deps, header, backends, inbound, lifecycle,  # noqa: F401
               routes, doctor, topology, pools, health, reload, stats, admin, control, admission,
               status_page, dns, access_log,
               drain, service, stream, deploy, observability, fleet, demo, faults, package)
from .base import ALL  # noqa: F401
