"""The analyzers' fast path: machinery that makes them faster without changing a value.

* :mod:`.partial_forward`: the forward pass on plateau-lens' own native modules from any
  layer on, for ablation and probes when no hook is attached;
* :mod:`.clean_pass`: one clean (unablated) pass per checkpoint and batch, shared by the
  analyzers that need it;
* :mod:`.parallel`: batch chunks on worker threads;
* :mod:`.allocator`: glibc's allocator told to reuse freed activation memory over a long
  checkpoint series.
"""
