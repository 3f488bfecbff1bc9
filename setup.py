"""Build of ksmlab's one optional compiled helper; everything else is in pyproject.toml.

``ksmlab._jhash`` is calc_checksum()'s jhash2 in C (``ksmlab/_jhash.c``). It is *optional*: with no
C compiler or no Python headers the build prints why it skipped the helper and the kit installs
as pure Python, which computes the same values (``KSMLAB_PURE=1`` forces that path at run time).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ksmlab._jhash", ["ksmlab/_jhash.c"], optional=True)])
