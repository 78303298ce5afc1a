"""The disclosure calendar (docs/design.md "The disclosure calendar"): working days,
holidays, the embargo timeline.

Pure: no clock, no I/O. Every computed instant is a `Step` whose derivation ends in a
machine-readable replay clause, ``[replay from=D add=N skip=D1,D2 at=HH:MM:SS]``, so
an explanation can be checked by recomputing each date from its text alone (`replay`).
"""
