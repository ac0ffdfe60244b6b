"""The local stack: Kafka, the three services and a demo driver, started and stopped as one."""
