"""The command owner on the stream engine, the gRPC servicer and the process entry point."""
