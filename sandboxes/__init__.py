"""Agency sandboxes: stand-ins for the agencies at the far end of the gateway.

A sandbox plays the AGENCY side of an agency contract (``docs/agencies/``):

* It is a real server on loopback (``SandboxServer``): the gateway reaches it
  through its ordinary transport over real sockets, so encoding, headers and
  framing are exercised exactly as in production.
* It reads and writes the agency format on its own and never imports the
  gateway's packages (``gateway``, ``adapters``, ``schemas``, ``audit``): a
  mistake in the gateway's codec shows up as a failing exchange instead of
  being shared by both ends.
* Its data is deterministic, derived from the subject (a hash of the id
  number), so the same inquiry gets the same records in every run and every
  process; each sandbox exposes a ``describe_subject`` so tests can know what
  to expect without copying the derivation.
* Latency and failures are knobs (``FaultKnobs``), seeded for reproducible
  runs, to exercise retries, deadlines and duplicate handling.
* It is a test and development tool only: never configured in place of an
  adapter, never pointed at by production settings.

Modules: ``server`` (loopback server, fault knobs; reused by every sandbox),
``json_contract`` (what every JSON-over-REST sandbox shares: strict reading,
the envelope, duplicate memory by XXID), ``public_security`` (REST inquiries,
vehicle seals, watches) with ``public_security_data`` (the records it holds)
and ``public_security_controls`` (its seal and watch registers),
``market_regulation`` (REST: company register, equity freezes) with
``market_regulation_data`` and ``market_regulation_controls``.
"""
