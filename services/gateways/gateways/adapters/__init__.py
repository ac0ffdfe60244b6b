"""Protobuf, HTTP, SMTP and a file: the outside world each gateway talks to."""
