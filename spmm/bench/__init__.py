"""spmm/bench"""
