"""Errors spmm raises for bad input, each naming the problem."""


class SpmmInputError(ValueError):
    """Inputs, targets or models that cannot be explained as given."""


class SpmmParameterError(SpmmInputError, TypeError):
    """A method or metric given a parameter it does not take, or a value outside the parameter's
    valid range (the message states the range)."""
