"""The ``seriatim`` command line."""
