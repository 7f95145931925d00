"""Pure, synchronous protocol code: no I/O, no clock reads, nothing of ours imported.

Every module cites the specification sections it implements. Time is an argument.
"""
