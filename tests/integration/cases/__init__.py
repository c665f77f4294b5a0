"""The integration tests, in the order they run. Each module registers its
tests with base.case; ALL lists them all."""

from . import cli, config_model, deps, header, backends, inbound, routes, doctor, topology, pools, health, reload, stats, access_log, drain, service, stream, lifecycle, demo  # noqa: F401  (registers tests)
from .base import ALL  # noqa: F401
