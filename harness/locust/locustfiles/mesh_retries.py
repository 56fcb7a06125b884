"""Retries under injected faults: half of the requests along a route with retries get a fault first —
every echo instance behind the route is programmed (on its control port, never through the mesh) to
answer that request's first arrival with 503. The mesh's retries must still bring the caller a 200:
a 503 reaching the caller is a failure. Counted: ``<route> faulted`` and ``<route> recovered``.

Needs a route whose retries cover 503 and number at least the instances behind it (each instance fails
once), e.g. ``retries: {attempts: 2, retry_on: [5xx]}`` over two instances.
"""

import random
import uuid

from locust import task

from fixtures.echo.client import EchoControl
from harness.locust import recorder
from harness.locust.traffic import MeshUser

FAULT_SHARE = 0.5  # the share of requests that get an injected failure


class RetryUser(MeshUser):
    def on_start(self) -> None:
        super().on_start()
        if not self.plan.retrying:
            raise RuntimeError("the scenario has no route whose retries cover 503 once per instance")

    @task
    def retried(self) -> None:
        route = random.choice(self.plan.retrying)
        if random.random() >= FAULT_SHARE:
            self.send(route)
            return
        key = f"locust-{uuid.uuid4().hex}"
        for version in route.versions:
            for control in route.echo_controls.get(version, []):
                EchoControl(control).program_sync(key, [{"status": 503}])
        status = self.send(route, key=key)  # counted once answered: a request cut at the run's end is not
        recorder.count(f"{route.label} faulted")
        if status == 200:
            recorder.count(f"{route.label} recovered")
