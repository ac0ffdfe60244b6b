"""Pure SLA logic: policies, business time, clocks. Standard library only; time passed in."""
