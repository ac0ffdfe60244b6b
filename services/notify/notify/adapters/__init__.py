"""Kafka and protobuf <-> the domain."""
