"""The HTTP API and web dashboard: thin shells over the same run function the CLI uses."""
