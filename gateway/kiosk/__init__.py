"""Self-service kiosks: their API routes, the WebSocket hub and the kiosk web page.

Kept apart from the counter: a kiosk is a client of the local API (with its own token) that
also gets pushed its own devices' scans and taps and the cloud's messages. Nothing here is
imported unless the API is on.
"""
