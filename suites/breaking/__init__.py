"""MESH-RESILIENCE: circuit breaking and outlier detection, on live traffic."""
