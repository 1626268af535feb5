"""The Entra side: the MSAL exchange, its on-disk cache, AADSTS explanations, the assertion."""
