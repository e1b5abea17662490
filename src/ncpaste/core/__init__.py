"""Sans-IO core: parsing, options, expiry arithmetic and HTTP decisions.

Nothing in this package imports trio, lmdb or socket; every function here is a
pure transformation that the tests can drive byte by byte.
"""
