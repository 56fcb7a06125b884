"""A mix of routes: each request picks one of the plan's routes at random (every destination the calling
workload may reach, each route with a path and headers that it — and no route before it — matches).
Locust's statistics show one row per route; an answer from a version the route does not send to is a
failure, as is anything but 200 (or the route's own injected abort status)."""

import random

from locust import task

from harness.locust.traffic import MeshUser


class RouteMixUser(MeshUser):
    def on_start(self) -> None:
        super().on_start()
        if not self.plan.routes:
            raise RuntimeError("the scenario has no route the calling workload can send a request to")

    @task
    def some_route(self) -> None:
        self.send(random.choice(self.plan.routes))
