"""The console script's root: the one module that sees every part and wires the sub-commands."""
