"""Other libraries' explainers (LXT AttnLRP / CP-LRP, inseq, Captum, zennit) as bench explainers,
called through their own public APIs (``pip install spmm[peers]``; Captum is a core dependency)."""
