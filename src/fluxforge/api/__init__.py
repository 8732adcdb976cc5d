"""The Python API behind `import fluxforge`: datasets, selections, in-memory features."""
