"""hilr: learners."""
