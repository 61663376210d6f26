"""Read-only observers, one module per system: each call is one observation (what was seen,
or one sentence saying why nothing was). Probes never assert and never write."""
