"""Code shared by every service: envelope, codecs, topic catalogue, clock, settings, metrics."""
