"""Package data: the kiosk page (HTML, JS, CSS) served by gateway/api/kiosk/handlers.py."""
