"""The notify service: turns SLA events into notifications and delivers them."""
