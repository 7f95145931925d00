"""Token signing keys: rotation with publish-before-sign, JWKS, private keys sealed at rest."""
