"""FluxForge collector service."""
