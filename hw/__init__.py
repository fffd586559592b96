"""Amaranth components of the Chrysalis accelerator."""
