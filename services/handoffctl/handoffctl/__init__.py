"""handoffctl: the command line for handoffs, SLAs and notifications."""
