"""One router per TAMS resource."""
