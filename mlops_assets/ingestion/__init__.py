"""Ingestion: contract validation, quarantine and the raw asset."""
