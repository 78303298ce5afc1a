"""Applications to the pre-disclosure list and the roster."""
