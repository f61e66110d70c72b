"""teachkit: see what convolutional networks see, and how neural style transfer works."""

__version__ = "0.2.0"  # the one place: pyproject.toml reads it ([tool.setuptools.dynamic])
