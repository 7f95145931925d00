"""User accounts: creation, password authentication, disabling, password changes."""
