"""Authentication: the SDK-HMAC-SHA256 signer and the credential sources of interface.md section 5."""
