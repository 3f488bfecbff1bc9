"""Views of a :class:`ksmlab.Machine` for notebooks: pandas tables, ipywidgets, matplotlib pictures.

The engine never imports these modules; they need the ``lab`` extra (pandas, ipywidgets, matplotlib).
"""
