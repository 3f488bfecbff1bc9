"""ksmlab: a steppable model of Linux KSM before and after commit 80e14822,
"ksm: share anon page without allocating" (Hugh Dickins; posted on 24 November 2009, merged in the
2.6.33 merge window).

``Machine(mode="allocate")`` runs mm/ksm.c as it was before the commit, ``Machine(mode="upgrade")``
as it was after it. See the README and the notebooks.
"""

from .errors import Interrupted, InvariantViolation, KernelOops, KsmlabError, OutOfMemory, RunStopped
from .machine import Ksmd, Machine, Process, Sysfs
from .page import PAGE_SIZE

__all__ = ["Machine", "Process", "Ksmd", "Sysfs", "PAGE_SIZE", "KsmlabError", "OutOfMemory", "KernelOops",
           "InvariantViolation", "RunStopped", "Interrupted"]
__version__ = "0.1.0"
