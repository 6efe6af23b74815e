"""tinykube: Kubernetes' Deployment system rebuilt in Python as a real local cluster."""

__version__ = "0.1.0"
