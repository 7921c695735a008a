"""Demo: the generator of the default review's synthetic literature snapshot.

The snapshot and its truth sidecar are packaged data (reviewlib/data/). Nothing in the engine imports
this package at run time: a protocol names its snapshot and its scripted reviewer's decisions as data.
"""
