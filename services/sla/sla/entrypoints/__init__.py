"""The stream processor, the gRPC servicer and the process entry point."""
