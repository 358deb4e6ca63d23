"""One reader per benchmark layout; `lav.eval.datasets` picks one."""
