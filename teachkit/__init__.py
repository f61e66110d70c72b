"""teachkit: see what convolutional networks see, and how neural style transfer works."""

__version__ = "0.1.0"
