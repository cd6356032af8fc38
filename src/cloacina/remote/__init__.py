"""What :class:`cloacina.Client` needs besides HTTP: the server's JSON error bodies back into
:class:`~cloacina.errors.CloacinaError` classes (:mod:`.errors`), Server-Sent Events read
from lines (:mod:`.sse`) and the JSON of DESIGN §9 back into the service's values
(:mod:`.decode`)."""
