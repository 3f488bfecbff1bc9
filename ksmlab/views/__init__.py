"""Views of a :class:`ksmlab.Machine` for notebooks: pandas tables, ipywidgets, matplotlib pictures.

The engine never imports these modules; they need the ``lab`` extra (pandas, ipywidgets, matplotlib).
Importing any of them sets up how a notebook shows a DataFrame (``tables._install_display``: full
text, left-aligned, no ``<NA>``), so every table of the course looks the same.
"""

from .tables import _install_display

_install_display()
