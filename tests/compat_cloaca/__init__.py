"""cloaca compatibility: its acceptance suite on cloacina.compat.cloaca."""
