"""Store hardware drivers: each turns a device into typed readings and takes typed actions.

Drivers know nothing of MQTT, the outbox or the cloud; the gateway wires them in.
"""
