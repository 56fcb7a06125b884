"""MESH-ROUTING checks (SPEC §4 Routing): weighted splits, weight shift, header/path match, no-match."""
