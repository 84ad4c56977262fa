"""The prior painter: ``sftgan-app`` (``ui``) over per-session state that knows no web framework (``session``)."""
