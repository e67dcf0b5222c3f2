"""The operators' dashboard at /dashboard/: the system at a glance, refreshed live."""
