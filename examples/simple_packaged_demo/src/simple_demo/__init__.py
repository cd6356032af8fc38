"""The seed's packaged workflow demo: a data processing pipeline."""
