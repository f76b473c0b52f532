"""The `concord` command: run, stop and inspect the services, prepare the bus and databases."""
