"""The handoff service: the leg lifecycle over gRPC, written to handoff.events.v1."""
