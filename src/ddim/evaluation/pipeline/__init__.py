"""The evaluation pipeline: a config becomes a plan (plan.py), the plan's cell samples and scores (cell.py) into
chunk files (store.py), the task runs one cell per Hydra job (task.py), and the sweep gathers them (sweep.py)."""
