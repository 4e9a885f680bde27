"""The store: the only package that touches a database. The run store (`core.py`, schema and
migrations, manifests as id lists, health and repair), the call cache every run directory shares,
stage-level reuse, run history and `cai gc`."""
