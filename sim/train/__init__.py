"""Training drivers: a network learns scikit-learn's digits on the golden model or the RTL.

One epoch loop (:mod:`.loop`) runs every driver over a strategy that owns the program, the
image and the machine: :class:`.golden.GoldenSteps` (a doorbell per minibatch on the golden
model of one core or of a cluster, data or model parallel), :class:`.rtl.RtlSteps` (a
simulation per chunk of steps on the RTL) and :class:`.cp.CpSessions` (a continuous-
propagation session per epoch on the golden cluster). The drivers: :mod:`.single` (one
core), :mod:`.parallel` (data and model parallel), :mod:`.cp` (continuous propagation) and
:mod:`.cluster` (the three cluster modes behind one entry point, and their first steps on
the RTL). Shared by all: the data and the minibatch order (:mod:`.dataset`), the float32
reference (:mod:`.reference`), the defaults and argument checks (:mod:`.settings`).
"""
