"""Curvature and line searches: backtracking and zoom line searches, L-BFGS, Newton-CG."""
