"""The gateway: Concord's only HTTP surface (JSON API and server-rendered pages).

It owns users, roles and sessions, and holds no case data: every case operation is an RPC
to the agency service that owns the data, made as the signed-in person.
"""
