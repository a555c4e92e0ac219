"""Schedules: pure functions of the step count, and the plateau-driven learning-rate scale."""
