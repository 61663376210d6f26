"""The sandbox's Kubernetes API, split like a moto service (see layout in this package)."""
