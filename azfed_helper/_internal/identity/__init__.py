"""The local managed-identity endpoint and the environment file that hands it to clients."""
