"""The Endpoints controller (upstream's ``pkg/controller/endpoint``): one ``Endpoints`` object per service with a
selector. :mod:`.util` holds its rules as pure functions, shared with the EndpointSlice controller."""

from .controller import EndpointsController, ServicePodsController

__all__ = ["EndpointsController", "ServicePodsController"]
