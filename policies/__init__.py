"""hilr: policies."""
