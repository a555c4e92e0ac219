"""Curvature and line searches: backtracking and zoom line searches, L-BFGS, Newton-CG, Sophia,
and the Hessian's and Fisher's diagonals of optax's second_order."""
