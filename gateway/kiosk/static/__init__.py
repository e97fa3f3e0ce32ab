"""Package data: the kiosk page (HTML, JS, CSS) served by gateway/kiosk/api.py."""
