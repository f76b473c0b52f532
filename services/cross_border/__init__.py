"""The central authority: requests to and from other jurisdictions."""
