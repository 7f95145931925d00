"""Capabilities of Ostiary, one package each: async use cases over ports (typing.Protocol stores).

Features import ``ostiary.protocol`` and each other's services, never ``web`` or ``storage``.
"""
