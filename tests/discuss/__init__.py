"""The -discuss list: distribution, held posts, moderation through the daemon."""
