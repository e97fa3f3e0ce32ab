"""The layer below the drivers: what every part of storegw shares.

It imports nothing of ours, so a driver, the gateway, the technician's CLI and the simulators
can all stand on it without pulling each other in.
"""
