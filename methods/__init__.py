"""SR methods behind one protocol (:mod:`methods.base`), one module per method family."""
