"""Model families (vision, text, audio); installed as ``spmm.adapters``."""
