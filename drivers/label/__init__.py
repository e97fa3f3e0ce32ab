"""label driver package."""
