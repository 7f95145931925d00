"""OAuth clients: registration, secrets (HMAC-stored, rotated with overlap), authentication."""
