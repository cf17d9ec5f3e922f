"""The web app's routes, one module per audience; each module's ``router(site)`` builds its
APIRouter, and every route in it declares the roles it admits with ``auth.allow``."""
