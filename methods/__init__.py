"""SR methods behind one protocol (:mod:`srarena.methods.base`), one module per method family."""
