"""The gRPC servicer and the process that serves it."""
