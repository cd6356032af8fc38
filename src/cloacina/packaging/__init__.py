"""``.cloacina`` packages: the archive format, building, signing, inspecting."""
