"""Legal documents and officers' credentials: the attachments a control travels with."""
