"""Authentication: the SDK-HMAC-SHA256 signer and the credential sources of docs/configuration.md."""
