"""The Service data path: ClusterIPs, NodePorts and endpoints as netfilter rules.

:mod:`.nftrules` renders a cluster's Services and endpoints as one self-contained
nftables table (pure; nothing is applied here).
"""

from .nftrules import Backend, ServicePort, ruleset, service_ports

__all__ = ["Backend", "ServicePort", "ruleset", "service_ports"]
