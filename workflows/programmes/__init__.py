"""The programmes a journey runs, one module each; registered in ``workflows/registry.py``."""
