"""scanner driver package."""
