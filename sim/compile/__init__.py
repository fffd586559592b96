"""The compiler: networks and configs to command streams and memory images, one core or a cluster.

One core: :mod:`.compiler` (the placement and the core commands of a step),
:mod:`.program` (the memory image and the host's runs). A cluster, data or model parallel:
:mod:`.parallel_program`, with :mod:`.parallel_panels` (row panels) and
:mod:`.parallel_reference` (the value of a step without commands). Continuous propagation:
:mod:`.cp_program`, with :mod:`.cp_stages` (the stages and the staleness rule),
:mod:`.cp_placement` (a stage on its core) and :mod:`.cp_reference` (the rule without
commands). A convolutional network on one core: :mod:`.cnn_program` (placement, tables,
commands and memory image). Jobs for the golden model and the RTL: :mod:`.job`; data:
:mod:`.data`.
"""
