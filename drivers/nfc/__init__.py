"""nfc driver package."""
