"""Where the assertion comes from: Google (metadata server, key files, impersonation)."""
