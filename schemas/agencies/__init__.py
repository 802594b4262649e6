"""Message formats of the partner agencies, as each agency defines them.

JSON agencies are described by marshmallow schemas here; XML agencies by XSD
files in ``schemas/xsd/``. Codecs validate every outgoing message before it is
sent and every incoming message before it is read.
"""
