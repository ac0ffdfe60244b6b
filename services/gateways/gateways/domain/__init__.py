"""Pure rules of delivery: what a notification looks like on each channel, and when it counts as sent."""
