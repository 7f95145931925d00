"""Second factors: TOTP (RFC 6238) and recovery codes; passkeys (WebAuthn) come next."""
