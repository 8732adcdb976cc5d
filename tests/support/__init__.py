"""Test support: builders and process helpers shared by several test directories.

Modules that provide fixtures are registered as pytest plugins in `tests/conftest.py`; tests
import the plain builders (`from tests.support.<module> import ...`) and never a conftest.
"""
