"""Experiments on a published snapshot: subsets drawn from it (subsets.py), their TRL export
(export.py), the students (student.py), training (finetune.py), evaluation with abstention
scoring (evaluate.py, abstention.py) and learning curves (ladder.py)."""
