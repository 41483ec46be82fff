"""Tools for developing SmartFlow, not part of the product (devtools/README.md)."""
