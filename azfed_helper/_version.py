"""Single source of the package version (read by the build backend without importing anything)."""

__version__ = "0.1.0"
