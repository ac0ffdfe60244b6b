"""Pure notification logic: what to tell whom. Standard library only."""
