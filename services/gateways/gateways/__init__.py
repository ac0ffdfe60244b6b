"""Channel gateways: ChannelGateway.Deliver over webhook, e-mail (SMTP) and a log file."""
