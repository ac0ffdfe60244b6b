"""Kafka, files and protobuf <-> the domain."""
