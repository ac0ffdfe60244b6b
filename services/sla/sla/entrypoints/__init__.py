"""The faust app, its agents and timers, and the process entry point."""
