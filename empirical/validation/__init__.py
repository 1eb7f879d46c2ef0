"""Bound validation, the toolkit's main experiment (docs/theory.md §2–§5, issue 4).

For each network of a population, at θ_0: GradSign and gradsign_sq, the exact Ψ_2 and
Ψ_1 of the sample-wise optima, the bounds with their measured constants, the A1/A2
checks and the sign–side agreement; then the trained network's losses and accuracy.
`schema` validates the TOML config, `job` measures one network, `run` drives a whole
run, `stats` holds the confidence intervals and `report` writes RUN/report.md.
"""
