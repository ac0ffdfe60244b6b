"""Benchmarks of the handoff stack: `python -m bench.run` (or `make bench`).

They answer two questions with numbers measured on the machine at hand: how far the
services are from what Kafka and a plain aiokafka loop can do here, and how late a breach
notification reaches a subscriber. Results go to the terminal and to bench/results.json.
"""
