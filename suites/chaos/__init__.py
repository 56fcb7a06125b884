"""MESH-CHAOS: the data plane under process and network faults (kills, restarts, partitions, slow hops)."""
