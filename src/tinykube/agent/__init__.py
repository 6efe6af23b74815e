"""The node agent: the kubelet's job for Linux processes, without Docker.

An agent registers its Node, heartbeats through a Lease, watches the pods bound
to it and runs each one as isolated processes (network, UTS, mount, PID and user
namespaces; bubblewrap builds the container's view of the filesystem). Images
come from a local content-addressed store built from Dockerfiles (``images``).
"""
