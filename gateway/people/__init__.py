"""People of the console: who logs in and as what. ``claims`` maps a verified ID
token's claims to a console role and court (pure logic); ``oidc`` is the OpenID
Connect relying party; ``services`` keeps the person in the session cookie;
``views`` the login pages; ``demo_provider`` the built-in demo identity provider."""
