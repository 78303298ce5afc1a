"""The members-only -discuss list: distribution of approved posts, held posts, sealed copies."""
