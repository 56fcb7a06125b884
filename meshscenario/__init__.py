"""The harness-neutral scenario: the contract between the harness and every mesh (SPEC §2).

A :class:`Scenario` declares services, their versions and instances, each one's SPIFFE identity,
routes and policies, as data. The harness builds one per check; every mesh adapter turns it into its
own configuration; the reference mesh (``meshproxy``) runs it directly. Nothing here does I/O beyond
reading a scenario file.
"""

from meshscenario.model import *  # noqa: F401,F403  (the model's public names, listed in model.__all__)
from meshscenario.model import __all__  # noqa: F401
