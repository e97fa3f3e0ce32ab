"""Simulated devices, broker and cloud: the whole store runs and is tested without hardware."""
