"""A small sales pipeline used by `make demo` and the end-to-end tests."""
