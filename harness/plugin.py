"""meshconform's pytest plugin (placeholder until the harness core lands)."""
