"""The wire protocol every side speaks: topics, the event envelope, signed tokens, enrolment
messages and certificate identity.

The gateway, the technician's CLI and the cloud simulator all import it, so a change to the
protocol is made once and each side sees it at once.
"""
