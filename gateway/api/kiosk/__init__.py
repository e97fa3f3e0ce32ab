"""The kiosks' part of the local API: routes (:mod:`.routes`), what a kiosk token may do
(:mod:`.policy`), the handlers, WebSocket and page (:mod:`.handlers`). It sits with the API,
over :mod:`gateway.kiosk`, so the kiosks themselves need nothing of the API."""
