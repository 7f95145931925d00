"""Outgoing mail: the port (``Mailer``) and the message every sender builds."""
