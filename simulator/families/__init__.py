"""The registered model families, in the order they run (a family reads the figures of those before it).

Adding a family: write its module (inputs, figures, a vectorised `run`) and add one line here.
"""

from simulator.families import compression, cost, decision, finance, goodput, quality, serving, training

FAMILIES = (
    training.FAMILY,
    goodput.FAMILY,
    cost.FAMILY,
    compression.FAMILY,
    quality.FAMILY,
    serving.FAMILY,
    finance.FAMILY,
    decision.FAMILY,  # last: it reads every cost
)
