"""A minimal service built only from the kit, to test the kit on the real broker and
databases: it notes events it consumes and publishes one of its own."""
