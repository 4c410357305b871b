"""Quitclaim: a consent gate for faces in digital asset repositories."""

__version__ = "0.1.0"
