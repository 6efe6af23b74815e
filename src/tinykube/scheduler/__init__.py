"""The scheduler: assigns pending pods to nodes as kube-scheduler's default profile does (see scheduler.py)."""

from .scheduler import Scheduler

__all__ = ["Scheduler"]
