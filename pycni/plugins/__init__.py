"""The interface plugins: one package per type, each a config model plus its ops."""
