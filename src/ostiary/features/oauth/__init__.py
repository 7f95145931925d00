"""OAuth 2.1 authorization server and OpenID Provider: codes, grants, tokens, revocation."""
