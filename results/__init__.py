"""Results of an experiment: the trial table, summary tables, plots, dashboard and reproduction.

This file imports nothing: callers import from the module that defines a name
(`results.load.load_experiment`, `results.report.write_report`), so reading an experiment never
loads the orchestration that trains (and never imports Ray).
"""
