"""The enforcement data exchange gateway (Flask application).

    from gateway import create_app
"""


def create_app(*args, **kwargs):  # imported lazily so `import gateway.settings` stays light
    from gateway.app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["create_app"]
