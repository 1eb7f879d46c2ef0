"""Sample-wise landscapes, Ψ, bounds and the symbolic derivations (docs/theory.md).

Importing the package registers the built-in solvers, assumptions and bounds (their
modules register themselves into `theory.solver_rules.SOLVERS` and `theory.registry`).
"""
from theory.agreement import sign_side_agreement
from theory.assumptions import Assumption, AssumptionCheck
from theory.bounds import Bound, evaluate_bounds
from theory.optima import SampleWiseOptima
from theory.psi import psi
from theory.registry import (
    assumption_names,
    bound_names,
    get_assumption,
    get_bound,
    register_assumption,
    register_bound,
)
from theory.solver_rules import SOLVERS, Option, Solver, solver_options
from theory.solvers import sample_wise_optima
from theory.symbolic import linear_closed_form_optima, linear_closed_form_psi
