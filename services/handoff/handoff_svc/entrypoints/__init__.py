"""gRPC servicer and process entry point."""
