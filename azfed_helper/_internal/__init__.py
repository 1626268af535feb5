"""The implementation behind azfed-helper's command line and public API: nothing here is public.

Packages by concern: ``sources`` (where the assertion comes from), ``entra`` (the exchange and its
cache), ``sidecar`` (the daemon), ``identity`` (the managed-identity endpoint), ``azcli`` (keeping
az logged in) and ``commands`` (thin adapters from the command line). Light modules at this level
sit on every command's path; heavy libraries are imported inside the functions that need them.
"""

# Not typing.TYPE_CHECKING: importing typing costs milliseconds on every command; mypy honours it.
TYPE_CHECKING = False
