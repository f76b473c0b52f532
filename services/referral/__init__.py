"""The referral hub: intake, routing, agency responses, the coordinators' pipeline view.

`domain.py` says what the hub does, in plain Python; `service.py` is how it is reached.
"""
