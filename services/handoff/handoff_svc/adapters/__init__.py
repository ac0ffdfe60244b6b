"""Translate between the domain and Kafka / protobuf."""
