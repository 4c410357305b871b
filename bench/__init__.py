"""``python -m bench``: speed, recall and cost of Quitclaim, each beside its baseline."""
