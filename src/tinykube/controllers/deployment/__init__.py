"""The Deployment controller (upstream's ``pkg/controller/deployment``): ReplicaSets per pod template,
rolling and recreate rollouts, proportional scaling, revisions, rollback, pause and progress deadlines."""

from .controller import DeploymentController

__all__ = ["DeploymentController"]
