"""Adapters of features/mail's ``Mailer``: SMTP (aiosmtplib) and the in-memory dev outbox."""
