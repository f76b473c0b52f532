"""The platform kit: the one way every Concord service does outbox, inbox, identity, logging."""
