"""rb: the Releaseboard command-line client. It never imports Django."""

__version__ = "1.0.0"
