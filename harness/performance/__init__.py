"""Performance measurement (SPEC §4 Performance): pure decisions over meter results and process samples.

``overhead`` (added latency per hop against a budget, with the machine's noise floor), ``resources``
(CPU and resident memory of proxy processes), ``search`` (the highest rate within a latency budget).
The measurements themselves are the meter's (harness.load); the checks are in suites/performance.
"""
