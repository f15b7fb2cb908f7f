"""Vigil: open-source AIOps platform."""

__version__ = "0.1.0"
