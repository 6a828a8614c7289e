"""Shared named streams: definitions, the update log, its Redis control plane."""
