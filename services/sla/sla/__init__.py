"""The sla service: SLA clocks per leg on business calendars, breaches, repeat contacts."""
