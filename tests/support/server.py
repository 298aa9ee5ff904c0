"""Test access to the real server/worker processes (the same helpers the demo and benchmarks use)."""

from shopfloor.runtime import ServerProcess, WorkerProcess, free_port

__all__ = ["ServerProcess", "WorkerProcess", "free_port"]
