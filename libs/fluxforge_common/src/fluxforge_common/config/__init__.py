"""Configuration models."""

from fluxforge_common.config.state import StateConfig

__all__ = ["StateConfig"]
