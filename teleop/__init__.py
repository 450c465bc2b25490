"""hilr: teleop."""
