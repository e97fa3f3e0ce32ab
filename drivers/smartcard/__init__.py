"""smartcard driver package."""
