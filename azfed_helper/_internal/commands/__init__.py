"""Command-line front ends: each module has ``configure(parser)`` and ``run(args) -> int``."""
