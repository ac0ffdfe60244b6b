"""Pure leg lifecycle: commands in, events out; no I/O, time passed in."""
