"""Loads meshconform's recorder (every response in µs into HdrHistogram, merged over workers) and its
custom options into a Locust process. No users: ``meshconform load`` loads it before any locustfile."""

from harness.locust import arguments, recorder  # noqa: F401  (importing registers their listeners)
