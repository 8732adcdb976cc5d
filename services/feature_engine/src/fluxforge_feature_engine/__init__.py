"""FluxForge feature engine service."""
