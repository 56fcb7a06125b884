"""Locust load runs against a mesh: ``meshconform load`` and the locustfiles it ships.

Two sides that never share a process. The CLI side (:mod:`.cli`, :mod:`.options`, :mod:`.target`,
:mod:`.plan`, :mod:`.command`, :mod:`.supervisor`, :mod:`.progress`, :mod:`.results`, :mod:`.merge`)
starts the mesh, builds the traffic plan and runs Locust as child processes; it never imports
``locust``, which monkey-patches the whole interpreter with gevent on import. The Locust side
(:mod:`.arguments`, :mod:`.recorder`, :mod:`.traffic` and ``locustfiles/``) only ever runs inside
``python -m locust``: it records every response in µs into HdrHistogram, ships each worker's histogram
to the master with Locust's own worker reports, and writes the merged result for the CLI to read.
"""
