"""spmm/metrics"""
