"""Live documents: the 0MQ proxy service and the ``adscan watch`` client (read side)."""
