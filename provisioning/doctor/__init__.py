"""``storegw provision doctor``: the checks by subject (files, network, session, devices,
hardware), and :mod:`provisioning.doctor.run` that runs them in order."""
