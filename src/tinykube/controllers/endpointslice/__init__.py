"""The EndpointSlice controller (upstream's ``pkg/controller/endpointslice``): ``discovery.k8s.io/v1``
EndpointSlices of every service with a selector, at most 100 endpoints each, changed with as few writes as
possible (:mod:`.util`, pure)."""

from .controller import EndpointSliceController

__all__ = ["EndpointSliceController"]
