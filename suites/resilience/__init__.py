"""MESH-RESILIENCE: retries, per-try timeouts, backoff, route timeouts and the mesh's fault injection."""
