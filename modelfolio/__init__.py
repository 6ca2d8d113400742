"""The product's command line, above the simulator and the report (`python -m modelfolio`, or `modelfolio` once
installed): the simulator's commands and the PDF report in one place."""
