"""A PuLP solver class for HiGHS that hands the whole LP to highspy in one call.

``pulp.HiGHS`` transfers a model with one ``addCol`` per variable and one ``addRow`` per constraint, sorts the
variables by name three times (``LpProblem.variables()``) and reads back duals and slacks row by row. For an LP of
~10^5 columns that costs more than solving it. ``FastHiGHS`` keeps PuLP's model and the same HiGHS solver, but
builds the row-wise matrix as flat arrays, calls ``passModel`` once and reads back only the column values.
Integer and binary columns (the storage's one-way binaries) are passed as HiGHS integrality.
"""

from __future__ import annotations

import highspy
import numpy as np
import pulp


class FastHiGHS(pulp.HiGHS):
    """pulp.HiGHS with a one-call model transfer; after solving, ``lp.solverModel`` is the highspy.Highs."""

    def buildSolverModel(self, lp: pulp.LpProblem) -> None:
        columns: dict[pulp.LpVariable, int] = {}
        for var in lp.objective:
            columns.setdefault(var, len(columns))
        starts, index, value, row_lower, row_upper = [0], [], [], [], []
        inf = highspy.kHighsInf
        for constraint in lp._constraints.values():
            for var, coefficient in constraint.items():
                column = columns.get(var)
                if column is None:
                    column = columns[var] = len(columns)
                index.append(column)
                value.append(coefficient)
            starts.append(len(index))
            lower, upper = constraint.getLb(), constraint.getUb()
            row_lower.append(-inf if lower is None else lower)
            row_upper.append(inf if upper is None else upper)
        variables = list(columns)
        sense = -1.0 if lp.sense == pulp.LpMaximize else 1.0
        model = highspy.HighsLp()
        model.num_col_ = len(variables)
        model.num_row_ = len(row_lower)
        model.col_cost_ = np.array([sense * lp.objective.get(var, 0.0) for var in variables], dtype=float)
        model.col_lower_ = np.array([-inf if v.lowBound is None else v.lowBound for v in variables], dtype=float)
        model.col_upper_ = np.array([inf if v.upBound is None else v.upBound for v in variables], dtype=float)
        model.row_lower_ = np.array(row_lower, dtype=float)
        model.row_upper_ = np.array(row_upper, dtype=float)
        model.offset_ = sense * lp.objective.constant
        model.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        model.a_matrix_.start_ = np.array(starts, dtype=np.int32)
        model.a_matrix_.index_ = np.array(index, dtype=np.int32)
        model.a_matrix_.value_ = np.array(value, dtype=float)
        integer = [var.cat == pulp.LpInteger for var in variables]
        if any(integer):
            model.integrality_ = [highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous
                                  for flag in integer]
        status = lp.solverModel.passModel(model)
        if status == highspy.HighsStatus.kError:
            raise pulp.PulpSolverError(f"HiGHS refused the model (passModel: {status}; {len(variables)} columns, "
                                       f"{len(row_lower)} rows)")
        lp._fast_highs_columns = variables

    def actualSolve(self, lp: pulp.LpProblem, **kwargs: object) -> int:
        self.createAndConfigureSolver(lp)
        self.buildSolverModel(lp)
        self.callSolver(lp)
        model_status = lp.solverModel.getModelStatus()
        if model_status == highspy.HighsModelStatus.kOptimal:
            status, sol_status = pulp.LpStatusOptimal, pulp.LpSolutionOptimal
            values = lp.solverModel.getSolution().col_value
            for var, column_value in zip(lp._fast_highs_columns, values, strict=True):
                var.varValue = column_value
        elif model_status in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible):
            status, sol_status = pulp.LpStatusInfeasible, pulp.LpSolutionInfeasible
        elif model_status == highspy.HighsModelStatus.kUnbounded:
            status, sol_status = pulp.LpStatusUnbounded, pulp.LpSolutionUnbounded
        else:
            status, sol_status = pulp.LpStatusNotSolved, pulp.LpSolutionNoSolutionFound
        lp.assignStatus(status, sol_status)
        return status
