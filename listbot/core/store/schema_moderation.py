"""Tables of moderation: decision tokens and items (generic), held posts.

The migration 0003_moderation mirrors these definitions.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, LargeBinary, String, Table, Text, UniqueConstraint

from listbot.core.store.schema import Id, UTCDateTime, metadata

# Something a person decides on (a held post, an application), identified by
# (kind, item_id). The first decision wins: state moves 'open' -> 'decided' with one
# conditional UPDATE, and that row keeps who decided, when and how.
decision_items = Table(
    "decision_items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("item_id", String(64), nullable=False),
    Column("list_name", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("decided_by", Text),
    Column("decided_at", UTCDateTime),
    Column("verb", String(16)),
    Column("reason", Text),
    Column("token_id", Id),
    UniqueConstraint("kind", "item_id", name="uq_decision_items_item"),
)

# Reply tokens: only the SHA-256 digest of a token is stored, never the token.
decision_tokens = Table(
    "decision_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("item_id", String(64), nullable=False),
    Column("list_name", String(64), nullable=False),
    Column("issued_to", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime),
    Column("used_by", Text),
    Index("ix_decision_tokens_item", "kind", "item_id"),
)

held_posts = Table(
    "held_posts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("list_name", String(64), nullable=False),
    Column("inbound_id", Id, nullable=False),
    Column("sender", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("message_id", Text),
    Column("raw", LargeBinary, nullable=False),
    Column("rule", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("hits", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("held_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("reminded_at", UTCDateTime),
    Column("expired_noted_at", UTCDateTime),
    Column("requests_sent", Integer, nullable=False, default=0),
    Index("ix_held_posts_state", "state", "expires_at"),
    UniqueConstraint("inbound_id", name="uq_held_posts_inbound"),
)
