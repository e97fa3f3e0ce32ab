"""One store, one ledger: the store's ledger authority and its members over the store LAN.

The authority is one gateway of the store (``[store_ledger] role = "authority"``): it keeps
the store's holds in ``store-ledger.db`` and serves them over mutual TLS with the gateways'
enrolment certificates. The other gateways (``role = "member"``) reserve through it before
accepting a single-use token offline. See docs/member-services.md, "One store, one ledger".
"""
