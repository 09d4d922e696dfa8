"""The mutation check of the C core: small faults applied one at a time, each of which the difftests must catch."""
