"""Launching gin-configured jobs on TPU VMs and pod slices (later issue)."""
