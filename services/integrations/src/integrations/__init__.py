"""Integrations service: owns the tenant's third-party integrations and their sync."""
SCHEMA = "integrations"
