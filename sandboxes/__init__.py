"""Agency sandboxes: stand-ins for the agencies at the far end of the gateway.

A sandbox plays the AGENCY side of an agency contract (``docs/agencies/``):

* It is a real server on loopback (``SandboxServer``): the gateway reaches it
  through its ordinary transport over real sockets, so encoding, headers and
  framing are exercised exactly as in production.
* It reads and writes the agency format on its own and never imports the
  gateway's side (``gateway``, ``adapters``, ``audit``): a mistake in the
  gateway's codec shows up as a failing exchange instead of being shared by
  both ends. XML sandboxes use ``schemas`` only for the hardened parser and
  the agencies' XSD files, which are the contract itself.
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
``market_regulation_data`` and ``market_regulation_controls``;
``soap_service`` (a SOAP 1.1 face for any agency:
WSDL served, envelopes parsed, faults), ``bank`` with ``bank_data`` (a bank's
ledger, transport-neutral) and ``soap_bank``; ``tax`` and ``soap_tax``;
``sftp_server`` (an SFTP server, paramiko's server side) with ``batch_agency``
(an agency answering batch files line by line), ``real_estate`` (the
registry's logic, transport-neutral) with ``real_estate_data``. The XML
sandboxes read their messages with ``schemas.xml`` and the XSDs (the format,
not the gateway's codec): ``schemas`` is the one project package a sandbox may
import.
"""
