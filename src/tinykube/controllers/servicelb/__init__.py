"""The ServiceLB controller (k3s' ServiceLB, a cloud provider's service controller): Services of type LoadBalancer
without a ``loadBalancerClass`` get an external IPv4 address from a local pool in ``status.loadBalancer``.
:mod:`.util` holds the allocation rules as pure functions."""

from .controller import ServiceLBController

__all__ = ["ServiceLBController"]
