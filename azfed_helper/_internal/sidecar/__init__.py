"""The daemon: the refresh loop, its schedule, health endpoints and systemd readiness."""
