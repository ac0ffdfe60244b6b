"""The faust app, the gRPC servicer and the process entry point."""
