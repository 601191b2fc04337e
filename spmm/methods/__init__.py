"""spmm/methods"""
