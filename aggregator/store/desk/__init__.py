"""The editors' desk in storage: accounts and sessions, decisions applied to stories,
their constraints for clustering, and what the desk reads.

One module per concern: ``accounts``, ``membership`` (merge, split, move, remove),
``marks`` (labels, flags, topics), ``state`` (undo, re-applying after clustering),
``queries``. ``facade.DeskStore``, half of the ``Store`` facade, wraps each in a
transaction.
"""

from aggregator.store.desk.accounts import LoginBlocked
from aggregator.store.desk.queries import StoryFilter

__all__ = ["LoginBlocked", "StoryFilter"]
