"""Timeouts every adapter shares, in one place (Gateway API keeps its timeouts in one struct too)."""

START_TIMEOUT_S = 60.0  # a dozen Python processes on 2 vCPUs; a failed start says which part hung
HARNESS_SPIFFE_PATH = "/ns/meshconform-system/sa/harness"  # identity path of the harness's own client certs
