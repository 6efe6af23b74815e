"""Cluster DNS: the names of Services and pods under the cluster zone (``cluster.local``), as CoreDNS serves them.

:mod:`.records` is the naming scheme as a pure function of Services and Endpoints;
:mod:`.server` serves it over UDP and TCP from the shared informers and answers names
outside the zone from the host's resolver. ``docs/dns.md`` describes the records.
"""

from .records import Config, Records
from .server import DnsServer, HostResolver

__all__ = ["Config", "DnsServer", "HostResolver", "Records"]
