"""hilr: robot_env."""
