"""The batched, crash-safe stream engine and its state stores."""
