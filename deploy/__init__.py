"""Deployment manifests: the parts generated from the code (python -m deploy.generate)."""
