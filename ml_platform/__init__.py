"""The control plane: connections, data sources, run history, admin, tasks and commands."""
