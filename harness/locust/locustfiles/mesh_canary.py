"""Canary traffic at the declared weights: every request goes to the first route of the scenario that
splits a destination over two or more versions by weight (e.g. 90/10), through the calling workload's
outbound listener with the destination's Host. The version answering each request is counted, so the
result puts the split the mesh made beside the declared weights; an answer from a version the route
does not declare, or anything but 200, is a failure."""

from locust import task

from harness.locust.traffic import MeshUser


class CanaryUser(MeshUser):
    def on_start(self) -> None:
        super().on_start()
        self.route = self.plan.canary
        if self.route is None:
            raise RuntimeError("the scenario has no route that splits traffic over two versions by weight")

    @task
    def canary(self) -> None:
        self.send(self.route)
