"""mltrainer: describe a model in words, get it trained, evaluated and exported."""

__version__ = "0.1.0"
