"""Input domains (images, text, audio): loading, feature groups, rendering; installed as ``spmm.modalities``."""
