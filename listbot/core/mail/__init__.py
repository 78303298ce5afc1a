"""Mail primitives: safe headers and addresses, outbound building, PGP and PGP/MIME,
sealing copies.
"""
